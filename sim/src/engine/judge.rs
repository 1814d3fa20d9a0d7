//! The stale-read judgement of a served response, and the dead-key count
//! at the end of a run.

use cache_core::envelope::Envelope;
use cache_core::flow::Aside;
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

/// Dead keys at the end: live feed entries whose view's current key is
/// another key, or whose logical expiry has passed. Returns (dead, their
/// bytes, live entries).
pub(crate) async fn count_dead(
    aside: &Aside,
    backends: &[std::sync::Arc<dyn Backend>],
    listers: &[LiveKeys],
    clock: &dyn Clock,
) -> (u64, u64, u64) {
    let now = clock.now();
    let (mut dead, mut bytes, mut live) = (0u64, 0u64, 0u64);
    for (p, lister) in listers.iter().enumerate() {
        let Some(raw) = backends.get(p) else { continue };
        let mut entries = lister();
        entries.sort();
        live += entries.len() as u64;
        for (key, len) in entries {
            let Ok(k) = cache_core::Key::new(key.clone()) else {
                continue;
            };
            let Ok(Some(value)) = raw.get(&k).await else { continue };
            let Ok(env) = Envelope::decode(&k, &value) else {
                continue;
            };
            let Some(payload) = Payload::decode(&env.payload) else {
                continue;
            };
            let is_dead = if !env.is_fresh(now) {
                true
            } else {
                match serde_json::from_slice::<View>(payload.view_json) {
                    // The key the application would read for this view now.
                    Ok(view) => match aside.plan(raw.as_ref(), &view).await {
                        Ok(plan) => plan.key != k,
                        Err(_) => false,
                    },
                    Err(_) => false,
                }
            };
            if is_dead {
                dead += 1;
                bytes += (key.len() + len) as u64;
            }
        }
    }
    (dead, bytes, live)
}
