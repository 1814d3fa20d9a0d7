//! # cache-testkit
//!
//! Test support for the range-cache workspace, kept out of `cache-core` so
//! that the library crate holds only the library. Every backend, the
//! simulator, the benchmarks and the example service take it as a
//! dev-dependency.
//!
//! # Layout
//!
//! - [`conformance`]: the backend contract's behaviour suite, one async
//!   function per point of `cache_core::Backend`'s `# Contract`, and the
//!   [`conformance_tests!`] macro that turns it into tests for one backend
//!   (directly and through `Box<dyn>` / `Arc<dyn>`); its `ttl` module holds
//!   the TTL points (expiry, zero, huge TTLs).
//! - [`strategy_suite`]: the strategy scenarios (the seed's verification,
//!   lost generations, the stale-set race, the commit-to-bump window, a
//!   freeze during a write, a model checker) as functions any backend's
//!   tests can call, and the [`strategy_tests!`] macro.
//! - [`process`], [`redis`], [`memcached`]: real servers for tests and
//!   benchmarks. Like redis-rs's `redis-test`: each server is a real process
//!   on a free loopback port, with persistence off and its files in a
//!   temporary directory, stopped when its guard is dropped (and frozen with
//!   `SIGSTOP` / resumed with `SIGCONT` by its pid, for fault tests). Binaries are
//!   found on `PATH` or through an environment variable; a missing binary is
//!   an error that says which Debian package to install, so a test fails
//!   loudly instead of passing without its server.
//!
//! Everything here is test code: functions panic with a message naming the
//! backend and the point that failed.
#![allow(clippy::print_stderr)]

pub mod conformance;
pub mod memcached;
pub mod process;
pub mod redis;
pub mod strategy_suite;

pub use process::{HarnessError, ServerProcess};

/// The `cache_core` this crate was built against, for the macros' paths.
#[doc(hidden)]
pub use cache_core as __cache_core;
