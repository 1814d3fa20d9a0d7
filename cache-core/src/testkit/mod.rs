//! Real servers for tests and benchmarks (feature `testkit`).
//!
//! Like redis-rs's `redis-test`: each server is a real process on a free
//! loopback port, with persistence off and its files in a temporary
//! directory, stopped when its guard is dropped. Binaries are found on `PATH`
//! or through an environment variable; a missing binary is an error that says
//! which Debian package to install, so a test fails loudly instead of passing
//! without its server.
//!
//! - [`process`]: the shared machinery (ports, binaries, spawn, wait, kill).
//! - [`redis`]: a single `redis-server` and a three-master Redis Cluster.
//! - [`memcached`]: `memcached` servers.
#![allow(clippy::print_stderr)]

pub mod memcached;
pub mod process;
pub mod redis;

pub use process::{HarnessError, ServerProcess};
