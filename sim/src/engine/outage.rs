//! [`Outage`]: ends a cell whose backend stays down.

use std::time::Duration;

use super::metrics::Recorder;
use crate::error::{Error, Result};

/// Watches a cell's error count for a backend that stays down.
///
/// Why real time: a dead server costs each request a reconnect attempt or a
/// command timeout, so a run that fails open on every request can take hours
/// while every answer comes from the database. A read served after a
/// backend call without a new error ends the streak (one that bypassed the
/// cache for a pending bump made no call, and proves nothing); only the clock of the error path is read, so a
/// healthy run never calls `Instant::now`.
pub(super) struct Outage {
    pub(super) limit: Option<Duration>,
    pub(super) errors: u64,
    pub(super) served: u64,
    pub(super) since: Option<std::time::Instant>,
}

impl Outage {
    pub(super) fn check(&mut self, rec: &Recorder) -> Result<()> {
        let Some(limit) = self.limit else { return Ok(()) };
        let (errors, served) = (rec.error_total(), rec.served_total());
        if errors == self.errors {
            if served != self.served {
                self.served = served;
                self.since = None;
            }
            return Ok(());
        }
        let streak = errors - self.errors;
        self.errors = errors;
        self.served = served;
        let now = std::time::Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= limit {
            return Err(Error::BackendDown {
                backend: String::new(),
                errors,
                after: limit,
                streak,
            });
        }
        Ok(())
    }
}
