//! Views interned per cell: what the engine derives once per distinct view
//! (its database query, digest and JSON form) and shares between the
//! requests for it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use cache_core::hash::Fnv1a;
use cache_core::View;

use crate::db::{Db, Memo, Query};
use crate::error::{Error, Result};

/// What the engine derives once per distinct view and shares between the
/// requests for it: the DB query, the digest and JSON form stored in
/// payloads.
///
/// Why: the same few thousand views are requested over and over; resolving
/// scopes, hashing the view and serialising it per request were a large
/// share of a request's cost.
pub(crate) struct ViewInfo {
    pub(crate) view: View,
    pub(crate) query: Query,
    /// The database's last answer about the present (see [`Db::query_memo`]).
    pub(crate) memo: std::cell::Cell<Option<Memo>>,
    pub(crate) digest: u64,
    pub(crate) json: Vec<u8>,
}

/// Interned views, bounded: when full it starts over (in-flight requests
/// hold their own `Rc`), which only costs recomputation, never changes a
/// result.
pub(crate) struct ViewTable {
    map: HashMap<ViewKey, Rc<ViewInfo>, WordHashBuilder>,
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

/// Distinct views kept interned (a few hundred bytes each).
const VIEW_TABLE_CAP: usize = 1 << 14;

impl ViewTable {
    pub(crate) fn new() -> Self {
        ViewTable {
            map: HashMap::with_hasher(WordHashBuilder),
        }
    }

    pub(crate) fn get(&mut self, view: View, db: &mut Db) -> Result<Rc<ViewInfo>> {
        let key = ViewKey::new(view);
        if let Some(info) = self.map.get(&key) {
            return Ok(info.clone());
        }
        let view = &key.view;
        if self.map.len() >= VIEW_TABLE_CAP {
            self.map.clear();
        }
        let info = Rc::new(ViewInfo {
            query: db.intern(view),
            memo: std::cell::Cell::new(None),
            digest: view_digest(view),
            json: serde_json::to_vec(view).map_err(|e| Error::Invalid(e.to_string()))?,
            view: view.clone(),
        });
        self.map.insert(key, info.clone());
        Ok(info)
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
        let mut db = Db::new();
        let a = table.get(v.clone(), &mut db).unwrap();
        let b = table.get(z.clone(), &mut db).unwrap();
        assert!(!Rc::ptr_eq(&a, &b));
        assert_ne!(a.json, b.json);
        assert!(Rc::ptr_eq(&a, &table.get(v, &mut db).unwrap()));
    }
}
