//! The simulator's feed payload: what the database answered, as of when,
//! for which view, padded to a realistic feed size. The loader writes it
//! into the entry buffer cache-core's flow seals ([`EntryBuf`]), so a fill
//! is one allocation.
//!
//! # Declared padding
//!
//! The padding is the bulk of a feed (5–10 KB against ~300 bytes of
//! header and view) and carries no information: it is there so stores fill,
//! evict and move bytes as they would with real feeds. For the in-process
//! store it can be *declared* instead of written: the payload ends with a
//! trailer (the padding's length, then [`PAD_MAGIC`]) and the store is told,
//! through [`declared_len`] as locmem's
//! [`value_size`](backend_locmem::LocmemBuilder::value_size), to count the
//! value as the padded one. Weights, admissions, evictions and the dead
//! bytes at the end are then exactly those of the padded run, so reports are
//! byte-identical, while each fill no longer writes, copies (`stamped` wraps
//! the entry into a new buffer) and frees kilobytes of spaces.
//!
//! The trailer stays last whatever wraps the payload: the envelope and the
//! strategies' stamps go in front. Remote stores and two-tier setups get
//! written padding: there the bytes on the wire are part of what is
//! measured, and a server cannot be told what a value counts as.

use bytes::BufMut;
use cache_core::envelope::EntryBuf;

use crate::db::Answer;

const MAGIC: &[u8; 4] = b"SIMF";
const HEADER: usize = 4 + 8 + 8 + 4 + 8 + 4;

/// Ends a value whose padding is declared: preceded by the padding's
/// length (`u64`, big-endian). Eight bytes no written feed ends with: a
/// padded feed ends in spaces, a generation or counter in digits.
pub(crate) const PAD_MAGIC: &[u8; 8] = b"SIMPAD\x00\x01";
/// The declared-padding trailer: length, then [`PAD_MAGIC`].
const TRAILER: usize = 8 + PAD_MAGIC.len();

/// The size `value` stands for: its length, plus the padding it declares
/// when it ends with a declared-padding trailer (minus the trailer). Pass it
/// to locmem's [`value_size`](backend_locmem::LocmemBuilder::value_size)
/// for a store that holds feeds written with declared padding.
pub fn declared_len(value: &[u8]) -> usize {
    let Some(body) = value.len().checked_sub(TRAILER) else {
        return value.len();
    };
    let (len, magic) = value[body..].split_at(8);
    if magic != PAD_MAGIC {
        return value.len();
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(len);
    usize::try_from(u64::from_be_bytes(word)).map_or(usize::MAX, |pad| body.saturating_add(pad))
}

/// A value of `len` bytes that [`declared_len`] counts as `declared`
/// (when `declared` is `len`, or at least `len` minus the trailer; `len`
/// spaces otherwise): what a replay of a cell's store calls writes in place
/// of a value of that shape (`crate::floor`), weighed by the store as the
/// value was.
pub(crate) fn stand_in(len: usize, declared: usize) -> Vec<u8> {
    let mut v = vec![b' '; len];
    let body = len
        .checked_sub(TRAILER)
        .filter(|body| declared != len && declared >= *body);
    if let Some(body) = body {
        let pad = (declared - body) as u64;
        v[body..body + 8].copy_from_slice(&pad.to_be_bytes());
        v[body + 8..].copy_from_slice(PAD_MAGIC);
    }
    v
}

/// A feed as the simulated database answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Payload<'a> {
    /// The answer reflects every commit before this instant (µs).
    pub(crate) as_of_excl: i64,
    /// Item count and content fingerprint.
    pub(crate) answer: Answer,
    /// Digest of the view it answers (a key collision shows as another view).
    pub(crate) view_digest: u64,
    /// The view as JSON, so dead keys can be recognised at the end.
    pub(crate) view_json: &'a [u8],
}

impl Payload<'_> {
    /// The payload in an entry buffer: header, view, then `item_bytes` of
    /// padding per item, written out, or `declared` in a trailer (see the
    /// module docs).
    pub(crate) fn to_entry(self, item_bytes: usize, declared: bool) -> EntryBuf {
        let pad = (self.answer.items as usize).saturating_mul(item_bytes);
        let room = if declared { TRAILER } else { pad };
        let mut buf = EntryBuf::with_capacity(HEADER + self.view_json.len() + room);
        let b = buf.payload_mut();
        b.put_slice(MAGIC);
        b.put_i64(self.as_of_excl);
        b.put_u64(self.answer.fingerprint);
        b.put_u32(self.answer.items);
        b.put_u64(self.view_digest);
        b.put_u32(u32::try_from(self.view_json.len()).unwrap_or(u32::MAX));
        b.put_slice(self.view_json);
        if declared {
            b.put_u64(pad as u64);
            b.put_slice(PAD_MAGIC);
        } else {
            b.put_bytes(b' ', pad);
        }
        buf
    }

    /// Reads a payload; `None` for anything else (e.g. an application's
    /// bytes on a shared server).
    pub(crate) fn decode(b: &[u8]) -> Option<Payload<'_>> {
        if b.len() < HEADER || &b[..4] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| -> Option<u64> { Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?)) };
        let u32_at = |i: usize| -> Option<u32> { Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
        let len = u32_at(32)? as usize;
        Some(Payload {
            as_of_excl: u64_at(4)? as i64,
            answer: Answer {
                items: u32_at(20)?,
                fingerprint: u64_at(12)?,
            },
            view_digest: u64_at(24)?,
            view_json: b.get(HEADER..HEADER.checked_add(len)?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::strategy::{EnvelopeForm, StoredForm};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn payloads_round_trip_through_cache_core_envelopes() {
        let view_json = br#"{"scopes":["cal:1"]}"#;
        let payload = Payload {
            as_of_excl: 1_759_741_200_000_001,
            answer: Answer {
                items: 3,
                fingerprint: 0xfeed,
            },
            view_digest: 7,
            view_json,
        };
        let expires = Some(UNIX_EPOCH + Duration::from_micros(1_759_741_500_123_456));
        let (entry, inner) = payload.to_entry(16, false).seal(expires, Duration::from_millis(8));
        let opened = EnvelopeForm.open(&entry).unwrap();
        assert_eq!(opened.payload(), &inner);
        assert_eq!(Payload::decode(&inner), Some(payload));
        assert_eq!(inner.len(), HEADER + view_json.len() + 3 * 16);
        assert_eq!(Payload::decode(b"SIMF"), None, "truncated");
        assert_eq!(declared_len(&entry), entry.len(), "written padding: its own length");
    }

    /// A declared payload decodes the same and counts exactly as the written
    /// one, wrapped in an envelope and a strategy's stamps (in front) or not.
    #[test]
    fn declared_padding_counts_as_the_written_padding() {
        let payload = Payload {
            as_of_excl: 5,
            answer: Answer {
                items: 40,
                fingerprint: 1,
            },
            view_digest: 2,
            view_json: br#"{"scopes":["cal:1","team:2"]}"#,
        };
        let (written, _) = payload.to_entry(160, false).seal(None, Duration::ZERO);
        let (declared, inner) = payload.to_entry(160, true).seal(None, Duration::ZERO);
        assert!(declared.len() < 200);
        assert_eq!(declared_len(&declared), written.len());
        assert_eq!(Payload::decode(&inner), Some(payload));
        let mut stamped = b"STMP\x01\x00\x00\x00\x00\x00\x00\x00\x07".to_vec();
        stamped.extend_from_slice(&declared);
        assert_eq!(declared_len(&stamped), 13 + written.len());
        assert_eq!(declared_len(b"17"), 2);
        assert_eq!(declared_len(&declared[..declared.len() - 1]), declared.len() - 1);
        let (empty, _) = Payload {
            answer: Answer {
                items: 0,
                fingerprint: 0,
            },
            ..payload
        }
        .to_entry(160, true)
        .seal(None, Duration::ZERO);
        assert_eq!(
            declared_len(&empty),
            empty.len() - TRAILER,
            "no items: less than its length"
        );
        for (len, counts) in [
            (declared.len(), written.len()),
            (empty.len(), empty.len() - TRAILER),
            (300, 300),
            (5, 5),
        ] {
            let v = stand_in(len, counts);
            assert_eq!((v.len(), declared_len(&v)), (len, counts));
        }
    }
}
