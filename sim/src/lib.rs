//! # sim — the cache invalidation simulator (`cache-sim`)
//!
//! Replays FullCalendar feed traffic against every (strategy, backend) pair,
//! judges every served response against a ground-truth database, and writes
//! the comparison report: stale reads, hit rate, backend cost, dead keys.
//!
//! # Layout
//!
//! - [`calendar`]: FullCalendar's range rules (month grid, week, day, list),
//!   navigation, and the three wire formats of `start`/`end`.
//! - [`db`]: the ground truth: items with full history, answering a feed
//!   query as of any instant.
//! - [`traffic`]: the seeded generator of users, tabs, navigation and writes.
//! - [`trace`]: events, the JSON Lines trace format (`TRACE_FORMAT.md`), the
//!   streaming reader with line-numbered errors, access-log import.
//! - [`engine`]: the event-driven replay of one cell in virtual time and the
//!   stale-read judgement.
//! - [`scenarios`]: the named scenarios and what each shows.
//! - [`backends`]: `--backend` specs and connecting them.
//! - [`runner`]: runs all cells (on worker threads) and assembles the report.
//! - [`report`]: Markdown, CSV, JSON and HTML (inline SVG) renderings.
//! - [`rng`]: the seeded PRNG (SplitMix64) and distributions.
//! - [`error`]: the simulator's error type.
//!
//! # Determinism
//!
//! Every random choice draws from [`rng::Rng`] seeded explicitly; events at
//! the same virtual instant are ordered by insertion sequence; reports hold
//! no wall-clock times and no hash-map iteration order. The same scenario,
//! seed and backend give a byte-identical `report.json` on locmem.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod backends;
pub mod calendar;
pub mod db;
pub mod engine;
pub mod error;
pub mod report;
pub mod rng;
pub mod runner;
pub mod scenarios;
pub mod trace;
pub mod traffic;

pub use error::{Error, Result};
