//! Benchmark suites comparing the backends and strategies with the raw clients.
//!
//! Not built yet: issue #7 fills this crate.
