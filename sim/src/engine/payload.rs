//! The simulator's feed payload: what the database answered, as of when,
//! for which view, padded to a realistic feed size. The loader writes it
//! into the entry buffer cache-core's flow seals ([`EntryBuf`]), so a fill
//! is one allocation.

use bytes::BufMut;
use cache_core::envelope::EntryBuf;

use crate::db::Answer;

const MAGIC: &[u8; 4] = b"SIMF";
const HEADER: usize = 4 + 8 + 8 + 4 + 8 + 4;

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
    /// padding per item.
    pub(crate) fn to_entry(self, item_bytes: usize) -> EntryBuf {
        let pad = (self.answer.items as usize).saturating_mul(item_bytes);
        let mut buf = EntryBuf::with_capacity(HEADER + self.view_json.len() + pad);
        let b = buf.payload_mut();
        b.put_slice(MAGIC);
        b.put_i64(self.as_of_excl);
        b.put_u64(self.answer.fingerprint);
        b.put_u32(self.answer.items);
        b.put_u64(self.view_digest);
        b.put_u32(u32::try_from(self.view_json.len()).unwrap_or(u32::MAX));
        b.put_slice(self.view_json);
        b.put_bytes(b' ', pad);
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
    use cache_core::envelope::Envelope;
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
        let (entry, inner) = payload.to_entry(16).seal(expires, Duration::from_millis(8));
        let key = cache_core::Key::new("k").unwrap();
        let env = Envelope::decode(&key, &entry).unwrap();
        assert_eq!(env.payload, inner);
        assert_eq!(Payload::decode(&inner), Some(payload));
        assert_eq!(inner.len(), HEADER + view_json.len() + 3 * 16);
        assert_eq!(Payload::decode(b"SIMF"), None, "truncated");
    }
}
