//! Helpers of the tests that run `cache-sim` and compare its report files.
#![allow(dead_code, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `cache-sim` built for these tests with `args`.
pub(crate) fn cache_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cache-sim"))
        .args(args)
        .output()
        .expect("running cache-sim")
}

/// The bytes of report file `file` in `dir`.
pub(crate) fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}
