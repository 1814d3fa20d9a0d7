//! A store told what its values count as ([`LocmemBuilder::value_size`])
//! admits, evicts and reports exactly as one holding values of that size:
//! what the simulator relies on when it declares feed padding instead of
//! writing it.

use backend_locmem::{LocmemBackend, LocmemBuilder};
use cache_core::{Backend, Bytes, Error, Key, ManualClock};

/// A value that declares `n` more bytes than it holds: its last 8 bytes.
fn declared(value: &[u8]) -> usize {
    match value.len().checked_sub(8) {
        Some(body) => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&value[body..]);
            body + usize::try_from(u64::from_be_bytes(n)).unwrap()
        }
        None => value.len(),
    }
}

fn store(builder: LocmemBuilder) -> LocmemBackend {
    builder
        .max_capacity_bytes(96 << 10)
        .max_value_size(Some(4 << 10))
        .hash_seed(Some(7))
        .clock(std::sync::Arc::new(ManualClock::at_unix_millis(0)))
        .deterministic(true)
        .build()
}

/// Replays a seeded mix of sets and gets over more keys than fit; values
/// are `pad` bytes long, written out or declared. Returns the live keys with
/// their sizes, sorted.
async fn replay(cache: &LocmemBackend, declare: bool) -> Vec<(String, usize)> {
    let mut state = 42u64;
    for _ in 0..12_000u32 {
        let r = cache_testkit::strategy_suite::splitmix64(&mut state);
        let k = if r.is_multiple_of(4) { r % 3_000 } else { r % 300 };
        let pad = 200 + (r >> 40) as usize % 900;
        let key = Key::new(format!("k:{k}")).unwrap();
        if r.is_multiple_of(5) || cache.get(&key).await.unwrap().is_none() {
            let value = if declare {
                let mut v = b"head".to_vec();
                v.extend_from_slice(&((pad - 4) as u64).to_be_bytes());
                v
            } else {
                vec![b'x'; pad]
            };
            cache.set(&key, Bytes::from(value), None).await.unwrap();
        }
    }
    let mut live = cache.live_entries();
    live.sort();
    live
}

#[tokio::test(flavor = "current_thread")]
async fn declared_sizes_evict_exactly_like_written_ones() {
    let written = replay(&store(LocmemBackend::builder()), false).await;
    let declared_store = store(LocmemBackend::builder().value_size(declared));
    let declared = replay(&declared_store, true).await;
    assert!(
        !written.is_empty() && written.len() < 300,
        "the store must evict: {} keys",
        written.len()
    );
    assert_eq!(written, declared, "same keys, same sizes");
    assert_eq!(declared_store.weighted_size(), store_weight(&written));
}

/// What the weigher charges for `live` (key + value + 96 per entry).
fn store_weight(live: &[(String, usize)]) -> u64 {
    live.iter().map(|(k, v)| (k.len() + v + 96) as u64).sum()
}

#[tokio::test(flavor = "current_thread")]
async fn the_size_limit_applies_to_the_declared_size() {
    let cache = store(LocmemBackend::builder().value_size(declared));
    let key = Key::new("big").unwrap();
    let mut v = b"head".to_vec();
    v.extend_from_slice(&(8_000u64).to_be_bytes());
    let err = cache.set(&key, Bytes::from(v), None).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { size: 8_004, .. }), "{err:?}");
}
