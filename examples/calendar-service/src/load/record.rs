//! What the replay records of every request, for the judge and the report.
//!
//! Instants are µs since the Unix epoch on the system clock
//! ([`crate::db::history::now_us`]): the client and every service process
//! run on one host, so a response's start and end compare directly with a
//! write's commit instant taken inside a service.

use sha2::{Digest, Sha256};

/// A feed body's fingerprint: the first 8 bytes of its SHA-256. The judge
/// compares it with the fingerprints of the bodies the database could have
/// produced; a false match needs a 64-bit collision.
pub fn digest(body: &[u8]) -> u64 {
    let hash = Sha256::digest(body);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// How a request ended, when it did not end with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No response within the client timeout.
    Timeout,
    /// The connection failed (refused, reset): the process was down.
    Connection,
    /// Skipped: a write of an item whose create did not succeed.
    Skipped,
}

/// A feed answered by fail-safe, as its `x-cache-fail-safe` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailSafeMark {
    /// `current`: the feed's calendars have not changed since it was loaded.
    Current,
    /// `stale` (or any other value): one of them has.
    Stale,
}

impl FailSafeMark {
    /// The mark a header value gives. A value this tool does not know is
    /// still a fail-safe answer, and counted as the one that may be stale.
    pub fn of(value: &[u8]) -> FailSafeMark {
        match value {
            b"current" => FailSafeMark::Current,
            _ => FailSafeMark::Stale,
        }
    }
}

/// One feed request and its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedRecord {
    /// Index of the request in the workload.
    pub request: u32,
    /// The service process that answered (after any rerouting).
    pub process: u16,
    /// Just before the request was sent.
    pub start_us: i64,
    /// When the whole body had arrived (or the request failed).
    pub end_us: i64,
    /// HTTP status; 0 when there was no response.
    pub status: u16,
    /// Why there was no response.
    pub failure: Option<Failure>,
    /// The body's [`digest`].
    pub digest: u64,
    /// The body's length in bytes.
    pub len: u32,
    /// The response was answered by fail-safe (`x-cache-fail-safe`).
    pub fail_safe: Option<FailSafeMark>,
}

/// One write request and its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRecord {
    /// Index of the request in the workload.
    pub request: u32,
    /// Just before the request was sent.
    pub start_us: i64,
    /// When the response had arrived (or the request failed).
    pub end_us: i64,
    /// HTTP status; 0 when there was no response.
    pub status: u16,
    /// Why there was no response.
    pub failure: Option<Failure>,
    /// `x-commit-seq`, when the write committed.
    pub commit_seq: Option<i64>,
    /// `x-commit-us`, when the write committed.
    pub commit_us: Option<i64>,
}

/// Everything one replay recorded.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Feed requests, in completion order.
    pub feeds: Vec<FeedRecord>,
    /// Writes, in completion order.
    pub writes: Vec<WriteRecord>,
    /// Requests sent to another process because theirs was down.
    pub rerouted: u64,
    /// How late requests were sent behind their schedule, µs (one per
    /// request): the replay keeps up with the trace only if this stays
    /// small.
    pub lag_us: Vec<u64>,
    /// Wall time from the first request's schedule to the last response.
    pub wall_us: u64,
    /// Trace time 0 on the system clock (paced replays), µs since the epoch.
    pub t0_us: i64,
}

/// The `q`-quantile (0..=1) of `values` (sorted in place), nearest rank;
/// 0 for none.
pub fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), 500);
        assert_eq!(quantile(&mut v, 0.99), 990);
        assert_eq!(quantile(&mut v, 0.999), 999);
        assert_eq!(quantile(&mut [], 0.5), 0);
        assert_ne!(digest(b"[]"), digest(b"[ ]"));
    }
}
