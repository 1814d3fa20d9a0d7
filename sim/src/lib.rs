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
//! - [`db`]: the ground truth: items with their recent history, answering a feed
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
//!
//! # Performance
//!
//! Measured on the project's 2-core VM (shared with other jobs, so expect
//! ±15 %), release build, locmem at its default 256 MiB per store:
//!
//! | run | before | after |
//! |---|---|---|
//! | `cache-sim run --scenario realistic --quiet` (7 cells, 5.36 M feed requests, 2 threads) | 250 s wall, 193 s CPU: 21 k req/s; peak RSS 681 MiB | 195 s wall, 115 s CPU: 27.5 k req/s (47 k req/CPU-s); peak RSS 819 MiB |
//! | `cache-sim replay r200k.jsonl --strategies versioned --quiet` (153 k requests, 1 cell) | 6.7 s, 3.0 s CPU; 293 MiB | 5.7 s, 2.6 s CPU; 322 MiB |
//! | same with `--backend locmem:1` (what the simulator itself needs) | 13 MiB | 43 MiB (interned views, reader thread) |
//! | `cache-sim replay t10m.jsonl --strategies versioned --quiet` (10.07 M events) | — | not finished: stopped after 9 CPU-min (~23 min wall, contended); RSS 747 MiB and still creeping up (+15 MiB/min) |
//! | same, `--strategies versioned,fixed-month` | — | not finished: stopped after 6.4 CPU-min; RSS 974 MiB and rising: over 1 GiB at the default capacity |
//!
//! With the `cache-sim` binary on jemalloc (its global allocator since) and
//! the machine otherwise idle, the same `realistic` run takes **49 s wall,
//! 82 s CPU: ~109 k simulated requests/s, peak RSS 842 MB** (measured with
//! `/usr/bin/time -v`).
//!
//! Memory is independent of trace length: `cache-sim replay t10m.jsonl
//! --strategies versioned --backend locmem:256 --threads 1` (10.07 M events)
//! peaks at **422 MB** RSS in 326 s, the same as the 2 M-event trace (424 MB in
//! 32 s). Several strategies at once multiply the store part (one store per
//! cell in flight).
//!
//! Traces: `cache-sim generate --actions 200000 --out r200k.jsonl` and
//! `cache-sim generate --actions 12500000 --out t10m.jsonl` (10.07 M events,
//! 1.6 GB). The VM was busy with other benchmarks during these runs
//! (load ≈ 4 on 2 cores), so CPU seconds are the steadier comparison.
//!
//! The goals are **not** met: 1 M requests/s would need ~2 µs per
//! request per core, and one cache-aside request here is ~20 µs of CPU, of
//! which the backend and strategy calls alone are well over 2 µs (see below).
//! Memory: the simulator's own state is bounded (history pruned, views
//! interned in a bounded table; what still grows is the live data set, about
//! 150 bytes per item created and not deleted), but each locmem store may
//! hold 256 MiB of entries and glibc's allocator adds heavily to that under
//! this churn, so peak RSS is dominated by `capacity × cells in flight`.
//! Use `--backend locmem:<MiB>` to bound it.
//!
//! Where the time goes now (`perf record --call-graph dwarf`, one
//! `versioned` cell): about two thirds is outside this crate — the
//! strategies' key building in cache-core (`format!` and `encode_part` per
//! key, a `Vec<String>` per plan), and moka's `get`/`insert`, hashing
//! (SipHash), housekeeping and table growth. Of the simulator's own work,
//! the largest part is filling the padded payload (`--item-bytes` × items, a
//! model parameter: a month feed is ~10 KB that must be written once per
//! fill, and fresh pages are faulted in while the store grows to capacity).
//!
//! What keeps the simulator's own share small and its memory bounded:
//! - **Ground truth.** [`db`] keeps each scope's latest item versions in one
//!   contiguous array; a query about the present scans it without touching
//!   history. The fingerprint is an order-independent sum, so rows can move.
//!   History older than anything a later judgement can ask about (the
//!   oldest in-flight request; the longest TTL + latencies for cached
//!   payloads) is pruned every 4096 commits, so the database holds the live
//!   items and one TTL's worth of versions, whatever the trace length.
//! - **Views are interned** per cell ([`engine`]): resolving scopes,
//!   hashing and serialising a view happen once per distinct view, not per
//!   request; the table is bounded (cleared at 16 384 views).
//! - **One buffer per fill**: the cache envelope and the payload are written
//!   together (cache-core's `Envelope::encode` would copy the payload again).
//! - **Traces** parse through a typed, borrowing fast path; any line it does
//!   not accept goes through the careful parser, so errors are unchanged.
//!   Reading streams; with a spare core (fewer cells than `--threads`) it
//!   runs on its own thread, in order.
//! - Results are unchanged by all of this: every scenario's `report.json`
//!   is byte-identical to the previous engine's, and so is a 200k-action
//!   replay on a store large enough that nothing is evicted. (With eviction,
//!   locmem's results vary slightly from run to run on any engine: moka's
//!   admission policy hashes keys with a per-process random seed.)
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
