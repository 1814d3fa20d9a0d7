//! The stale-read judgement of a served response, and the dead-key count
//! at the end of a run.

use cache_core::flow::Aside;
use cache_core::strategy::Liveness;
use cache_core::{Backend, Clock, View};

use crate::db::{Db, Memo, Query};
use crate::engine::payload::Payload;
use crate::engine::LiveKeys;

/// Judges a response not loaded by the request itself (a hit, or a
/// coalesced load): `None` when fresh, `Some(staleness µs)` when it misses a
/// write committed before the request started.
/// `q` and `digest` are the requested view's query and digest, `memo` its
/// remembered answer (see [`Db::answer_memo`]).
pub(crate) fn judge(
    db: &Db,
    q: &Query,
    memo: &mut Option<Memo>,
    digest: u64,
    start_us: i64,
    served_at: i64,
    p: &Payload<'_>,
) -> Option<u64> {
    // A payload stored for another view (a key collision) proves nothing by
    // its timestamp: only a content comparison can clear it.
    let same_view = p.view_digest == digest;
    if same_view {
        if p.as_of_excl >= start_us {
            return None; // queried after the request started: reflects every earlier write
        }
        if !db.any_write_between(q, p.as_of_excl, start_us) {
            return None;
        }
    }
    if db.answer_memo(q, start_us, memo) == p.answer {
        return None; // writes in between did not change this feed
    }
    let from = p.as_of_excl.min(start_us);
    let first = db.first_relevant_write(q, from, start_us).unwrap_or(from);
    Some(u64::try_from(served_at.saturating_sub(first)).unwrap_or(0))
}

/// What the dead-key count found at the end of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DeadCount {
    /// Feed entries still stored that the strategy would not serve now.
    pub(crate) dead: u64,
    /// Their bytes (key + value).
    pub(crate) bytes: u64,
    /// Of the dead, those under a key no read of their view uses any more
    /// (and not yet expired): orphans, which only their TTL removes. The
    /// rest sit under their view's current key (expired, or `stamped`
    /// with stamps that are no longer current) and go with its next fill.
    pub(crate) orphaned: u64,
    /// Live entries listed (feeds and control keys).
    pub(crate) live: u64,
}

/// Dead keys at the end: stored feed entries the strategy would not serve
/// now. The strategy decides: its stored form opens each entry
/// ([`cache_core::strategy::StoredForm`]) and the opened entry says whether
/// it is live under the plan a read of its view makes now. An expired
/// entry is dead without asking for a plan (a plan may seed generations).
pub(crate) async fn count_dead(
    asides: &[Aside],
    backends: &[std::sync::Arc<dyn Backend>],
    listers: &[LiveKeys],
    clock: &dyn Clock,
) -> DeadCount {
    let now = clock.now();
    let mut count = DeadCount::default();
    for (p, lister) in listers.iter().enumerate() {
        let Some(raw) = backends.get(p) else { continue };
        // The store's own strategy instance (one for all when they share).
        let Some(aside) = asides.get(p % asides.len().max(1)) else {
            continue;
        };
        let form = aside.strategy().stored_form();
        let mut entries = lister();
        entries.sort();
        count.live += entries.len() as u64;
        for (key, len) in entries {
            let Ok(k) = cache_core::Key::new(key.clone()) else {
                continue;
            };
            let Ok(Some(value)) = raw.get(&k).await else { continue };
            let Some(entry) = form.open(&value) else {
                continue; // a generation, a key index: not a feed entry
            };
            let Some(payload) = Payload::decode(entry.payload()) else {
                continue;
            };
            let liveness = if !entry.envelope().is_fresh(now) {
                Liveness::Expired
            } else {
                match serde_json::from_slice::<View>(payload.view_json) {
                    // What a read of this view would do now.
                    Ok(view) => match aside.plan(raw.as_ref(), &view).await {
                        Ok(plan) => entry.liveness(&k, &plan, now),
                        Err(_) => Liveness::Live,
                    },
                    Err(_) => Liveness::Live,
                }
            };
            // A fenced entry is not served now, but its write is still
            // open: not counted either way (none is left when a run ends).
            if !matches!(liveness, Liveness::Live | Liveness::Fenced) {
                count.dead += 1;
                count.bytes += (key.len() + len) as u64;
                count.orphaned += u64::from(liveness == Liveness::Orphaned);
            }
        }
    }
    count
}
