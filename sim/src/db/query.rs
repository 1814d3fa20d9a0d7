//! Feed queries: resolving a view, answering it as of any instant,
//! remembering answers about the present, and the judgement's questions
//! about the writes in between.

use cache_core::View;

use super::{code_of, mix, Db, ItemState, STATUSES, WORK_TYPES};

/// A feed query resolved against the database's interned scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    scopes: Few<u32>,
    start_us: i64,
    end_us: i64,
    work_type: Option<Option<u8>>,
    status: Option<Option<u8>>,
}

impl Query {
    /// The ids of the query's scopes ([`Db::scope_index`]), sorted.
    pub fn scope_ids(&self) -> &[u32] {
        &self.scopes
    }

    fn matches_fields(&self, start_us: i64, end_us: i64, work_type: u8, status: u8) -> bool {
        start_us < self.end_us
            && self.start_us < end_us
            && self.work_type.is_none_or(|w| w == Some(work_type))
            && self.status.is_none_or(|w| w == Some(status))
    }

    fn matches(&self, s: &ItemState) -> bool {
        self.matches_fields(s.start_us, s.end_us, s.work_type, s.status)
    }
}

/// The answer to a feed query: how many items and a fingerprint of exactly
/// which item revisions, so two answers compare in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Items in the feed.
    pub items: u32,
    /// The wrapping sum of a 64-bit mix of each (item id, revision): equal
    /// sets give equal sums whatever the order items are visited in, so rows
    /// may move (pruning) without changing answers.
    pub fingerprint: u64,
}

/// A remembered answer about the present (see [`Db::query_memo`]).
#[derive(Debug, Clone)]
pub struct Memo {
    /// Commits to each of the query's scopes (parallel to its `scopes`)
    /// that the answer reflects.
    commits: Few<u64>,
    answer: Answer,
}

/// A short list kept inline: a view names one to three scopes, and a
/// query's scopes and its memo's counts are read on every load of the view,
/// where each separate allocation was a cache miss. Longer lists (views
/// over many calendars) go to the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Few<T> {
    /// The first `len` are the list; the rest are `T::default()`.
    Inline {
        len: u8,
        items: [T; FEW],
    },
    Heap(Vec<T>),
}

/// What [`Few`] holds inline.
const FEW: usize = 4;

impl<T: Copy + Default> Few<T> {
    fn collect(items: impl ExactSizeIterator<Item = T>) -> Self {
        if items.len() > FEW {
            return Few::Heap(items.collect());
        }
        let mut inline = [T::default(); FEW];
        let mut len = 0;
        for (slot, x) in inline.iter_mut().zip(items) {
            *slot = x;
            len += 1;
        }
        Few::Inline { len, items: inline }
    }
}

impl<T> std::ops::Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Few::Inline { len, items } => &items[..usize::from(*len)],
            Few::Heap(v) => v,
        }
    }
}

impl<T> std::ops::DerefMut for Few<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Few::Inline { len, items } => &mut items[..usize::from(*len)],
            Few::Heap(v) => v,
        }
    }
}

impl Db {
    fn query_for(&self, mut scopes: Vec<u32>, view: &View) -> Query {
        scopes.sort_unstable();
        Query {
            scopes: Few::collect(scopes.into_iter()),
            start_us: view.range.start().timestamp_micros(),
            end_us: view.range.end().timestamp_micros(),
            work_type: view.params.get("work_type").map(|v| code_of(&WORK_TYPES, v)),
            status: view.params.get("status").map(|v| code_of(&STATUSES, v)),
        }
    }

    /// Resolves a view into a query. Filters are the view parameters
    /// `work_type` and `status`; an unknown value matches nothing, as a SQL
    /// `WHERE` would. Scopes without items yet are left out, so the query
    /// must be resolved again once they have some; [`Db::intern`] gives a
    /// query that stays valid.
    pub fn resolve(&self, view: &View) -> Query {
        let scopes: Vec<u32> = view
            .scopes
            .iter()
            .filter_map(|s| self.scope_ids.get(s.as_str()).copied())
            .collect();
        self.query_for(scopes, view)
    }

    /// Like [`Db::resolve`], but registers unknown scopes (empty until
    /// written), so the query stays valid for the rest of the run and can
    /// be kept with an interned view.
    pub fn intern(&mut self, view: &View) -> Query {
        let scopes: Vec<u32> = view.scopes.iter().map(|s| self.scope_id(s.as_str())).collect();
        self.query_for(scopes, view)
    }

    /// Answers `q` as the app would have before `before_us` (commits `<`
    /// that instant), without counting it as an app query. Instants before
    /// the pruning horizon are answered from what is left (see [`Db::prune`]).
    pub fn answer(&self, q: &Query, before_us: i64) -> Answer {
        let mut h = 0u64;
        let mut n = 0u32;
        for &s in q.scopes.iter() {
            for r in &self.scopes[s as usize].rows {
                if r.commit_us < before_us {
                    // The latest version is the one visible: no history lookup.
                    if r.present && q.matches_fields(r.start_us, r.end_us, r.work_type, r.status) {
                        n += 1;
                        h = h.wrapping_add(mix(r.id, r.rev));
                    }
                } else if let Some((rev, st)) = self.items[r.item as usize].at(before_us) {
                    if q.matches(st) {
                        n += 1;
                        h = h.wrapping_add(mix(r.id, rev));
                    }
                }
            }
        }
        Answer {
            items: n,
            fingerprint: h,
        }
    }

    /// Runs `q` for the app (counted in [`Db::queries`]) at `now_us`: sees
    /// every commit at or before `now_us`.
    pub fn query(&mut self, q: &Query, now_us: i64) -> Answer {
        self.queries += 1;
        self.answer(q, now_us.saturating_add(1))
    }

    /// Like [`Db::query`], remembering the answer in `memo`: reused while
    /// no scope of `q` has had a commit since, brought up to date from the
    /// commits since when some have.
    ///
    /// Why: between two writes to its calendars a popular view is queried
    /// again and again, and each query scans every item of its scopes; the
    /// scan was the simulator's largest cost after the cache itself. And
    /// when a scope did change, a handful of writes separate the memo from
    /// the present while the scan visits every item: the answer's count and
    /// fingerprint are sums over items, so each item written since is taken
    /// out as the memo saw it and put back as it is now. Only answers about
    /// the present are remembered (every commit so far is at or before
    /// `now_us`, as in a replay, where the trace's writes are applied before
    /// any later step); any other question is answered by a scan. `memo`
    /// must only ever be used with the same `q` on this `Db`.
    pub fn query_memo(&mut self, q: &Query, now_us: i64, memo: &mut Option<Memo>) -> Answer {
        if now_us < self.last_commit_us {
            return self.query(q, now_us);
        }
        self.queries += 1;
        self.present(q, memo)
    }

    /// Answers `q` as of `before_us` as [`Db::answer`] does, from `memo`
    /// (as [`Db::query_memo`] keeps it, and without counting a query) when
    /// no scope of `q` has had a commit since: then that answer is the
    /// present one. The judgement asks this of every hit on an entry older
    /// than a write to its scopes.
    pub fn answer_memo(&self, q: &Query, before_us: i64, memo: &mut Option<Memo>) -> Answer {
        let unchanged = before_us >= self.horizon_us
            && q.scopes.iter().all(|&s| {
                self.scopes[s as usize]
                    .writes
                    .last()
                    .is_none_or(|w| w.commit_us < before_us)
            });
        if unchanged {
            self.present(q, memo)
        } else {
            self.answer(q, before_us)
        }
    }

    /// The answer to `q` about the present (every commit so far), from
    /// `memo` when it is current or can catch up, else a scan (remembered).
    fn present(&self, q: &Query, memo: &mut Option<Memo>) -> Answer {
        if let Some(m) = memo {
            let current = m.commits.len() == q.scopes.len()
                && q.scopes
                    .iter()
                    .zip(m.commits.iter())
                    .all(|(&s, &c)| self.scopes[s as usize].commits == c);
            if current {
                return m.answer;
            }
            if let Some(answer) = self.catch_up(q, m) {
                return answer;
            }
        }
        let answer = self.answer(q, self.last_commit_us.saturating_add(1));
        let commits = Few::collect(q.scopes.iter().map(|&s| self.scopes[s as usize].commits));
        *memo = Some(Memo { commits, answer });
        answer
    }

    /// Brings `m` up to the present from the writes committed since it was
    /// taken; `None` (and `m` untouched) when some of them are pruned or
    /// they are too many to be cheaper than a scan.
    ///
    /// Each write since takes its item out as it was before the write (if
    /// it matched) and puts it back as it is after (if it matches): over an
    /// item's writes the steps in between cancel, leaving its version when
    /// the memo was taken out and its version now in. Counting writes
    /// rather than comparing instants keeps writes committed at the memo's
    /// own instant, after it was taken, apart.
    fn catch_up(&self, q: &Query, m: &mut Memo) -> Option<Answer> {
        let (mut n, mut h) = (m.answer.items, m.answer.fingerprint);
        if m.commits.len() != q.scopes.len() {
            return None;
        }
        for (&s, &seen) in q.scopes.iter().zip(m.commits.iter()) {
            let sr = &self.scopes[s as usize];
            let kept = sr.commits - sr.writes.len() as u64;
            // `None` when some writes since the memo are pruned.
            let from = usize::try_from(seen.checked_sub(kept)?).ok()?;
            let since = &sr.writes[from.min(sr.writes.len())..];
            if since.len() > sr.rows.len() / 2 {
                return None; // as much work as a scan
            }
            for w in since {
                if w.before.is_some_and(|st| q.matches(&st)) {
                    n = n.wrapping_sub(1);
                    h = h.wrapping_sub(mix(w.id, w.rev.wrapping_sub(1)));
                }
                if w.after.is_some_and(|st| q.matches(&st)) {
                    n = n.wrapping_add(1);
                    h = h.wrapping_add(mix(w.id, w.rev));
                }
            }
        }
        m.answer = Answer {
            items: n,
            fingerprint: h,
        };
        for (&s, c) in q.scopes.iter().zip(m.commits.iter_mut()) {
            *c = self.scopes[s as usize].commits;
        }
        Some(m.answer)
    }

    /// True when any scope of `q` had a write committed in `[from, before)`.
    /// The cheap first check before comparing answers.
    pub fn any_write_between(&self, q: &Query, from_us: i64, before_us: i64) -> bool {
        q.scopes.iter().any(|&s| {
            let w = &self.scopes[s as usize].writes;
            let i = w.partition_point(|w| w.commit_us < from_us);
            w.get(i).is_some_and(|w| w.commit_us < before_us)
        })
    }

    /// Commit time of the earliest write in `[from, before)` that changed
    /// what `q` shows (the item matched before or after it).
    pub fn first_relevant_write(&self, q: &Query, from_us: i64, before_us: i64) -> Option<i64> {
        let mut best: Option<i64> = None;
        for &s in q.scopes.iter() {
            let w = &self.scopes[s as usize].writes;
            let start = w.partition_point(|w| w.commit_us < from_us);
            for &super::WriteRec { commit_us: t, item, .. } in &w[start..] {
                if t >= before_us || best.is_some_and(|b| t >= b) {
                    break;
                }
                let rec = &self.items[item as usize];
                let after = rec.at(t.saturating_add(1)).map(|(_, s)| *s);
                let before = rec.at(t).map(|(_, s)| *s);
                if after.is_some_and(|s| q.matches(&s)) || before.is_some_and(|s| q.matches(&s)) {
                    best = Some(t);
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Write, WriteKind};
    use cache_core::{Scope, TimeRange};
    use chrono::DateTime;

    fn view(start: &str, end: &str) -> View {
        let r = TimeRange::new(
            DateTime::parse_from_rfc3339(start).unwrap(),
            DateTime::parse_from_rfc3339(end).unwrap(),
        )
        .unwrap();
        View::new([Scope::new("cal:1").unwrap()], r).unwrap()
    }

    #[test]
    fn answers_as_of_any_instant() {
        let mut db = Db::new();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        let st = ItemState {
            start_us: t("2025-10-15T09:00:00Z"),
            end_us: t("2025-10-15T10:00:00Z"),
            work_type: 0,
            status: 0,
        };
        let w = |kind, state| Write {
            kind,
            item: 1,
            scope: "cal:1".into(),
            state,
        };
        db.commit(&w(WriteKind::Create, Some(st)), 100).unwrap();
        db.commit(&w(WriteKind::Delete, None), 200).unwrap();
        let q = db.resolve(&view("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00"));
        assert_eq!(db.answer(&q, 150).items, 1);
        assert_eq!(db.answer(&q, 200).items, 1, "a commit at 200 is not before 200");
        assert_eq!(db.answer(&q, 201).items, 0);
        assert!(db.any_write_between(&q, 150, 201));
        assert_eq!(db.first_relevant_write(&q, 101, 300), Some(200));
        let outside = db.resolve(&view("2025-12-01T00:00:00Z", "2025-12-02T00:00:00Z"));
        assert_eq!(db.first_relevant_write(&outside, 0, 300), None);
        assert!(db.commit(&w(WriteKind::Edit, Some(st)), 300).is_err());
    }

    /// Remembered answers about the present must equal fresh scans after
    /// every commit, whichever scope it touched, and across pruning.
    #[test]
    fn remembered_answers_follow_every_commit() {
        let mut rng = crate::rng::Rng::new(7);
        let hour = 3_600_000_000i64;
        let scopes = ["cal:1", "cal:2", "team:1"];
        let at = |h: i64| DateTime::from_timestamp_micros(h * hour).unwrap().fixed_offset();
        let view = |names: &[&str], s: i64, e: i64| {
            View::new(
                names.iter().map(|n| Scope::new(*n).unwrap()),
                TimeRange::new(at(s), at(e)).unwrap(),
            )
            .unwrap()
        };
        let mut db = Db::new();
        let queries = [
            db.intern(&view(&["cal:1"], 0, 48)),
            db.intern(&view(&["cal:2", "team:1"], 10, 30)),
            db.intern(&view(&["cal:1", "cal:2", "team:1"], 0, 24).with_param("status", "open")),
        ];
        let mut memos = [None, None, None];
        let mut live: Vec<(u64, &str)> = Vec::new();
        let mut reused = 0;
        for t in 1..3_000i64 {
            let start_us = rng.below(48) as i64 * hour;
            let state = ItemState {
                start_us,
                end_us: start_us + hour,
                work_type: 0,
                status: rng.below(2) as u8,
            };
            if rng.chance(0.4) {
                let w = if live.is_empty() || rng.chance(0.4) {
                    live.push((t as u64, scopes[rng.index(scopes.len())]));
                    let (item, scope) = live[live.len() - 1];
                    Write {
                        kind: WriteKind::Create,
                        item,
                        scope: scope.into(),
                        state: Some(state),
                    }
                } else if rng.chance(0.7) {
                    let (item, scope) = live[rng.index(live.len())];
                    Write {
                        kind: WriteKind::Edit,
                        item,
                        scope: scope.into(),
                        state: Some(state),
                    }
                } else {
                    let (item, scope) = live.swap_remove(rng.index(live.len()));
                    Write {
                        kind: WriteKind::Delete,
                        item,
                        scope: scope.into(),
                        state: None,
                    }
                };
                db.commit(&w, t * 10).unwrap();
            }
            if t % 500 == 0 {
                db.prune(t * 10 - 100);
            }
            for (q, memo) in queries.iter().zip(&mut memos) {
                let before = memo.as_ref().map(|m: &Memo| m.commits.clone());
                let got = db.query_memo(q, t * 10, memo);
                reused += usize::from(before == memo.as_ref().map(|m| m.commits.clone()));
                assert_eq!(got, db.answer(q, t * 10 + 1), "query at {t}");
                // The judgement's questions, about the present and the past.
                for before in [t * 10 + 1, t * 10 - 5, t * 10 - 25] {
                    assert_eq!(
                        db.answer_memo(q, before, memo),
                        db.answer(q, before),
                        "answer before {before}"
                    );
                }
            }
        }
        assert!(reused > 1_000, "the memo was reused only {reused} times");
    }

    /// Writes committed at the instant a memo was taken, after it, are
    /// still caught up on (the memo counts writes, not instants).
    #[test]
    fn memos_catch_up_on_writes_at_their_own_instant() {
        let hour = 3_600_000_000i64;
        let at = |h: i64| DateTime::from_timestamp_micros(h * hour).unwrap().fixed_offset();
        let mut db = Db::new();
        let q = db.intern(&View::new([Scope::new("cal:1").unwrap()], TimeRange::new(at(0), at(48)).unwrap()).unwrap());
        let state = |h: i64| {
            Some(ItemState {
                start_us: h * hour,
                end_us: (h + 1) * hour,
                work_type: 0,
                status: 0,
            })
        };
        let write = |kind, item, h| Write {
            kind,
            item,
            scope: "cal:1".into(),
            state: if kind == WriteKind::Delete { None } else { state(h) },
        };
        for item in 1..=8 {
            db.commit(&write(WriteKind::Create, item, item as i64), 10).unwrap();
        }
        let mut memo = None;
        assert_eq!(db.query_memo(&q, 10, &mut memo).items, 8);
        // Same instant: an edit out of range, one in range, a delete, a create.
        db.commit(&write(WriteKind::Edit, 1, 60), 10).unwrap();
        db.commit(&write(WriteKind::Edit, 2, 3), 10).unwrap();
        db.commit(&write(WriteKind::Edit, 2, 4), 10).unwrap();
        db.commit(&write(WriteKind::Delete, 3, 0), 10).unwrap();
        db.commit(&write(WriteKind::Create, 9, 5), 10).unwrap();
        let got = db.query_memo(&q, 10, &mut memo);
        assert_eq!(got, db.answer(&q, 11));
        assert_eq!(got.items, 7);
        db.commit(&write(WriteKind::Edit, 1, 2), 20).unwrap();
        assert_eq!(db.query_memo(&q, 20, &mut memo), db.answer(&q, 21));
    }
}
