//! The stored form of a cached view: the payload plus its *logical* expiry
//! and how long it took to load.
//!
//! Why the framework stores expiry itself: server TTLs follow real time, but
//! the simulator runs on a [`ManualClock`](crate::ManualClock) (a week of
//! traffic in seconds), and moka cannot take a custom clock at all. So the
//! expiry instant per the injected [`Clock`](crate::Clock) travels with the
//! entry and is checked on read; the server TTL stays as a garbage-collection
//! bound. The load time feeds probabilistic early refresh (XFetch).
//!
//! Layout (big-endian): `b"RCE1"`, `expires_at` in Unix milliseconds
//! (`u64::MAX` = never), load time in microseconds (`u64`), then the payload.
//! 20 bytes of overhead per entry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::key::Key;

const MAGIC: &[u8; 4] = b"RCE1";
/// Bytes added in front of every payload.
pub const HEADER_LEN: usize = 20;

/// A payload with its logical expiry and load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// When the entry stops being valid, per the injected clock; `None` = never.
    pub expires_at: Option<SystemTime>,
    /// How long the loader took to produce the payload.
    pub load_time: Duration,
    /// The cached bytes (e.g. a JSON feed).
    pub payload: Bytes,
}

impl Envelope {
    /// True when the entry is still valid at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    /// Serialises the envelope.
    pub fn encode(&self) -> Bytes {
        let mut buf = EntryBuf::with_capacity(self.payload.len());
        buf.payload_mut().put_slice(&self.payload);
        buf.seal(self.expires_at, self.load_time).0
    }

    /// Parses bytes written by [`Envelope::encode`]; `key` names the entry in
    /// the error when the bytes are something else.
    pub fn decode(key: &Key, bytes: &Bytes) -> Result<Self> {
        Self::parse(bytes).ok_or_else(|| Error::Codec {
            key: key.to_string(),
            source: "entry is not a cache envelope (bad magic or too short)".into(),
        })
    }

    /// [`Envelope::decode`] without a key to name: `None` when `bytes` are
    /// not an envelope. For the strategies' stored forms
    /// ([`crate::strategy::StoredForm`]), which open entries for every layer.
    pub(crate) fn parse(bytes: &Bytes) -> Option<Self> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return None;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[4..12]);
        let expires = u64::from_be_bytes(word);
        word.copy_from_slice(&bytes[12..20]);
        let load = u64::from_be_bytes(word);
        Some(Envelope {
            // `checked_add`: a crafted header must not panic (it reads as never).
            expires_at: (expires != u64::MAX)
                .then(|| UNIX_EPOCH.checked_add(Duration::from_millis(expires)))
                .flatten(),
            load_time: Duration::from_micros(load),
            payload: bytes.slice(HEADER_LEN..),
        })
    }
}

/// An entry built in one buffer: room for the header, then the payload
/// written in place by the loader, then the header filled in by
/// [`EntryBuf::seal`].
///
/// Why: payloads are often kilobytes (a month of events), and building the
/// payload first and [`Envelope::encode`] after copies it into a second
/// buffer on every cache fill. The simulator fills millions of entries.
///
/// ```
/// use bytes::BufMut;
/// use cache_core::envelope::{Envelope, EntryBuf};
/// let mut buf = EntryBuf::with_capacity(7);
/// buf.payload_mut().put_slice(b"[1,2,3]");
/// let (entry, payload) = buf.seal(None, std::time::Duration::from_millis(3));
/// assert_eq!(&payload[..], b"[1,2,3]");
/// let key = cache_core::Key::new("k").unwrap();
/// assert_eq!(Envelope::decode(&key, &entry).unwrap().payload, payload);
/// ```
#[derive(Debug, Clone)]
pub struct EntryBuf(BytesMut);

impl EntryBuf {
    /// An empty entry with room for `payload_len` payload bytes.
    pub fn with_capacity(payload_len: usize) -> Self {
        let mut b = BytesMut::with_capacity(HEADER_LEN.saturating_add(payload_len));
        b.put_bytes(0, HEADER_LEN);
        EntryBuf(b)
    }

    /// An entry holding a copy of `payload`.
    pub fn from_payload(payload: &[u8]) -> Self {
        let mut b = Self::with_capacity(payload.len());
        b.0.put_slice(payload);
        b
    }

    /// The buffer to append the payload to (it holds the header's room
    /// first: append only).
    pub fn payload_mut(&mut self) -> &mut BytesMut {
        &mut self.0
    }

    /// Payload bytes written so far.
    pub fn payload_len(&self) -> usize {
        self.0.len() - HEADER_LEN
    }

    /// Writes the header and returns the whole entry and a view of its
    /// payload (no copy). `expires_at` past what the format can hold reads
    /// back as the latest instant it can.
    pub fn seal(mut self, expires_at: Option<SystemTime>, load_time: Duration) -> (Bytes, Bytes) {
        let expires = expires_at.map_or(u64::MAX, |t| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1).min(u64::MAX - 1))
                .unwrap_or(0)
        });
        let load = u64::try_from(load_time.as_micros()).unwrap_or(u64::MAX);
        let header = &mut self.0[..HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4..12].copy_from_slice(&expires.to_be_bytes());
        header[12..20].copy_from_slice(&load.to_be_bytes());
        let entry = self.0.freeze();
        let payload = entry.slice(HEADER_LEN..);
        (entry, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects_foreign_bytes() {
        let key = Key::new("k").unwrap();
        let e = Envelope {
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            load_time: Duration::from_micros(4_567),
            payload: Bytes::from_static(b"[1,2,3]"),
        };
        let back = Envelope::decode(&key, &e.encode()).unwrap();
        assert_eq!(back, e);
        assert!(back.is_fresh(UNIX_EPOCH + Duration::from_millis(1_700_000_000_122)));
        assert!(!back.is_fresh(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)));
        let never = Envelope { expires_at: None, ..e };
        assert_eq!(Envelope::decode(&key, &never.encode()).unwrap().expires_at, None);
        assert!(matches!(
            Envelope::decode(&key, &Bytes::from_static(b"[1,2,3]")),
            Err(Error::Codec { .. })
        ));
    }
}
