//! Views interned once and shared. What is derived once per distinct
//! view (its digest and JSON form) travels with the trace to every cell as
//! an `Arc<ViewInfo>` ([`ViewTable`], where the trace is generated or
//! read); each cell keeps its own per-view state (the database query and
//! its remembered answer) in a table indexed by the view's id
//! ([`ViewStates`]), with no hashing.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cache_core::hash::Fnv1a;
use cache_core::View;

use crate::db::{Db, Memo, Query};
use crate::error::{Error, Result};

/// A distinct view as the trace carries it to the cells: the view, its
/// digest and JSON form (stored in payloads), and the id that names its
/// state in each cell's [`ViewStates`].
///
/// Why: the same few thousand views are requested over and over; hashing a
/// view, comparing it with its interned twin and serialising it, per
/// request and per cell, were a large share of a request's cost. Interned
/// once, where the trace is generated or read, every cell gets them for an
/// `Arc` clone.
pub(crate) struct ViewInfo {
    pub(crate) view: View,
    pub(crate) digest: u64,
    pub(crate) json: Vec<u8>,
    /// Unique over a run (never reused, unlike a table slot), so a cell
    /// can tell its slot's occupant from another view.
    pub(crate) id: u64,
}

/// Interned views, bounded: when full it starts over (views in flight keep
/// their own `Arc`), which only costs recomputation, never changes a
/// result.
pub(crate) struct ViewTable {
    map: HashMap<ViewKey, Arc<ViewInfo>, WordHashBuilder>,
    next_id: u64,
}

/// A view as a table key, offsets included.
///
/// Why not `View` itself: chrono's `DateTime` compares and hashes the instant
/// only, so `2025-09-29T00:00:00+08:00` and `2025-09-28T16:00:00Z` are equal
/// `View`s, yet clients sending them get different cache keys (the
/// `timezone-variants` hazard). Interning them together would plan one with
/// the other's key.
#[derive(PartialEq, Eq, Hash)]
struct ViewKey {
    view: View,
    offsets: (i32, i32),
}

impl ViewKey {
    fn new(view: View) -> Self {
        let offsets = (
            view.range.start().offset().local_minus_utc(),
            view.range.end().offset().local_minus_utc(),
        );
        ViewKey { view, offsets }
    }
}

/// Distinct views kept interned (a few hundred bytes each), and slots in
/// each cell's [`ViewStates`]: the ids of one table's contents are
/// consecutive, so they take distinct slots.
const VIEW_TABLE_CAP: usize = 1 << 14;

impl ViewTable {
    pub(crate) fn new() -> Self {
        ViewTable {
            map: HashMap::with_hasher(WordHashBuilder),
            next_id: 0,
        }
    }

    /// The shared form of `view`.
    pub(crate) fn get(&mut self, view: View) -> Result<Arc<ViewInfo>> {
        let key = ViewKey::new(view);
        if let Some(info) = self.map.get(&key) {
            return Ok(info.clone());
        }
        if self.map.len() >= VIEW_TABLE_CAP {
            self.map.clear();
        }
        let view = &key.view;
        let info = Arc::new(ViewInfo {
            digest: view_digest(view),
            json: serde_json::to_vec(view).map_err(|e| Error::Invalid(e.to_string()))?,
            view: view.clone(),
            id: self.next_id,
        });
        self.next_id += 1;
        self.map.insert(key, info.clone());
        Ok(info)
    }
}

/// What one cell keeps per view: its database query (scope names resolved
/// to the cell's database ids) and the database's last answer about the
/// present (see [`Db::query_memo`]).
pub(crate) struct ViewState {
    id: u64,
    pub(crate) query: Query,
    pub(crate) memo: Option<Memo>,
}

/// A cell's [`ViewState`]s, in a slot per view id modulo the table's size.
///
/// Why not a hash map: the id is all the lookup needs, so a request finds
/// its view's state with one indexed load. A slot taken by another view
/// (ids a table's size apart) is rebuilt, which costs a query resolution
/// and a remembered answer, never a result.
pub(crate) struct ViewStates {
    slots: Vec<Option<ViewState>>,
}

impl ViewStates {
    pub(crate) fn new() -> Self {
        ViewStates { slots: Vec::new() }
    }

    /// `info`'s state in this cell, resolved against `db` if new.
    pub(crate) fn get(&mut self, info: &ViewInfo, db: &mut Db) -> &mut ViewState {
        let i = (info.id % VIEW_TABLE_CAP as u64) as usize;
        if self.slots.len() <= i {
            // Grown to what the trace uses: a short trace needs few slots.
            self.slots
                .resize_with((i + 1).next_power_of_two().min(VIEW_TABLE_CAP), || None);
        }
        let slot = &mut self.slots[i];
        if slot.as_ref().is_some_and(|s| s.id != info.id) {
            *slot = None;
        }
        slot.get_or_insert_with(|| ViewState {
            id: info.id,
            query: db.intern(&info.view),
            memo: None,
        })
    }
}

/// A word-at-a-time multiply-rotate hasher (FxHash's step, SplitMix64's
/// finaliser) for the view table.
///
/// Why not std's SipHash: it was the largest single cost of interning, and
/// the table needs no protection against crafted keys. It is never iterated,
/// so its order cannot reach a report.
#[derive(Debug, Default, Clone, Copy)]
struct WordHashBuilder;

impl std::hash::BuildHasher for WordHashBuilder {
    type Hasher = WordHasher;
    fn build_hasher(&self) -> WordHasher {
        WordHasher(0)
    }
}

struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// A digest of `view` that is the same in every run and build (FNV-1a).
fn view_digest(view: &View) -> u64 {
    let mut h = Fnv1a::default();
    view.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::TimeRange;

    #[test]
    fn views_that_differ_in_one_field_or_offset_are_interned_apart() {
        use std::hash::BuildHasher;
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        let v = View::new(
            [cache_core::Scope::new("cal:1").unwrap()],
            TimeRange::new(at("2025-09-29T00:00:00+08:00"), at("2025-11-10T00:00:00+08:00")).unwrap(),
        )
        .unwrap();
        let w = v.clone().with_param("status", "open");
        let z = View::new(
            [cache_core::Scope::new("cal:1").unwrap()],
            TimeRange::new(at("2025-09-28T16:00:00Z"), at("2025-11-09T16:00:00Z")).unwrap(),
        )
        .unwrap();
        let h = |x: &View| WordHashBuilder.hash_one(ViewKey::new(x.clone()));
        assert_eq!(h(&v), h(&v.clone()));
        assert_ne!(h(&v), h(&w));
        assert_ne!(h(&v), h(&z), "same instants, other offset: another view");
        assert!(ViewKey::new(v.clone()) != ViewKey::new(z.clone()));
        let mut table = ViewTable::new();
        let a = table.get(v.clone()).unwrap();
        let b = table.get(z.clone()).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_ne!(a.json, b.json);
        assert_ne!(a.id, b.id);
        assert!(Arc::ptr_eq(&a, &table.get(v).unwrap()));
    }
}
