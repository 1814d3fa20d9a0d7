//! Pruning: the database forgets history no later question can reach.

use super::Db;

impl Db {
    /// Forgets what only questions about instants before `horizon_us` could
    /// need: versions superseded before it, writes committed before it, and
    /// items deleted before it (their ids may then be created again).
    ///
    /// Why: the history grows with every write, and a long trace must replay
    /// in bounded memory. The engine knows how far back any later question
    /// can reach (the oldest in-flight request, the oldest query a cached
    /// entry that is still fresh can carry) and prunes up to there; every
    /// answer about an instant at or after the horizon is unchanged. A
    /// horizon behind an earlier one is ignored.
    pub fn prune(&mut self, horizon_us: i64) {
        if horizon_us <= self.horizon_us {
            return;
        }
        self.horizon_us = horizon_us;
        for sr in &mut self.scopes {
            let old_writes = sr.writes.partition_point(|w| w.commit_us < horizon_us);
            sr.writes.drain(..old_writes);
            let mut i = 0;
            while i < sr.rows.len() {
                let r = sr.rows[i];
                if !r.present && r.commit_us < horizon_us {
                    // Deleted before the horizon: invisible to every question left.
                    sr.rows.swap_remove(i);
                    if let Some(moved) = sr.rows.get(i) {
                        self.items[moved.item as usize].row = i as u32;
                    }
                    let rec = &mut self.items[r.item as usize];
                    self.ids.remove(&rec.id);
                    rec.history = Vec::new();
                    self.free_items.push(r.item);
                    continue;
                }
                let h = &mut self.items[r.item as usize].history;
                // Keep the version visible at the horizon and all later ones.
                let visible = h.partition_point(|v| v.commit_us < horizon_us);
                if visible > 1 {
                    h.drain(..visible - 1);
                    if h.capacity() > 4 * h.len() {
                        h.shrink_to_fit();
                    }
                }
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{ItemState, Write, WriteKind};
    use cache_core::{Scope, TimeRange, View};
    use chrono::DateTime;
    use std::collections::HashMap;

    /// A random history on a few items in two scopes; pruning at `h` must
    /// leave every question about instants at or after `h` unchanged.
    #[test]
    fn pruning_keeps_every_answer_at_or_after_the_horizon() {
        let mut rng = crate::rng::Rng::new(42);
        let hour = 3_600_000_000i64;
        let state = |rng: &mut crate::rng::Rng| {
            let start_us = rng.below(48) as i64 * hour;
            ItemState {
                start_us,
                end_us: start_us + hour,
                work_type: rng.below(2) as u8,
                status: rng.below(2) as u8,
            }
        };
        let mut live: Vec<u64> = Vec::new();
        let mut scope_of: HashMap<u64, &str> = HashMap::new();
        let mut db = Db::new();
        let mut next_id = 1;
        for t in 1..2_000i64 {
            let (kind, item, st) = if live.is_empty() || rng.chance(0.3) {
                next_id += 1;
                live.push(next_id);
                scope_of.insert(next_id, if rng.chance(0.5) { "cal:1" } else { "team:1" });
                (WriteKind::Create, next_id, Some(state(&mut rng)))
            } else if rng.chance(0.7) {
                (WriteKind::Edit, live[rng.index(live.len())], Some(state(&mut rng)))
            } else {
                (WriteKind::Delete, live.swap_remove(rng.index(live.len())), None)
            };
            let w = Write {
                kind,
                item,
                scope: scope_of[&item].into(),
                state: st,
            };
            db.commit(&w, t * 10).unwrap();
        }
        let v = |s: i64, e: i64| {
            let at = |h: i64| DateTime::from_timestamp_micros(h * hour).unwrap().fixed_offset();
            let r = TimeRange::new(at(s), at(e)).unwrap();
            View::new([Scope::new("cal:1").unwrap(), Scope::new("team:1").unwrap()], r)
                .unwrap()
                .with_param("status", "open")
        };
        let mut queries = vec![db.intern(&v(0, 48)), db.intern(&v(10, 20))];
        queries.push(db.intern(&View {
            params: Default::default(),
            ..v(5, 30)
        }));
        let horizon = 12_000;
        let instants: Vec<i64> = (horizon..20_010).step_by(7).collect();
        let ask = |db: &Db| -> Vec<_> {
            queries
                .iter()
                .flat_map(|q| {
                    instants.iter().map(|&t| {
                        (
                            db.answer(q, t),
                            db.any_write_between(q, horizon + 3, t),
                            db.first_relevant_write(q, horizon, t),
                        )
                    })
                })
                .collect()
        };
        let before = ask(&db);
        let held = db.versions_held();
        db.prune(horizon);
        assert!(db.versions_held() < held / 2, "{} of {held}", db.versions_held());
        let after = ask(&db);
        assert_eq!(before, after);
        assert!(before.iter().any(|(a, _, _)| a.items > 0));
    }
}
