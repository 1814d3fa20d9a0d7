//! A deterministic store evicts as a function of its operations alone:
//! stalls in wall time (which trigger moka's timed maintenance) change
//! nothing. Without the option they do, which is why the simulator sets it.

use std::time::Duration;

use backend_locmem::LocmemBackend;
use cache_core::{Backend, Bytes, Key, ManualClock};

/// Replays a seeded mix of sets and gets over more keys than fit, pausing
/// the thread for `stall` before a few chosen operations; returns the keys
/// left in the store.
async fn replay(deterministic: bool, stall: Duration) -> Vec<String> {
    let cache = LocmemBackend::builder()
        .max_capacity_bytes(96 << 10)
        .hash_seed(Some(7))
        .clock(std::sync::Arc::new(ManualClock::at_unix_millis(0)))
        .deterministic(deterministic)
        .build();
    let value = Bytes::from(vec![b'x'; 700]);
    let mut state = 42u64;
    for i in 0..12_000u32 {
        if i % 3_000 == 1_500 && !stall.is_zero() {
            std::thread::sleep(stall);
        }
        // Zipf-ish: most operations on a few hundred hot keys.
        let r = cache_testkit::strategy_suite::splitmix64(&mut state);
        let k = if r.is_multiple_of(4) { r % 3_000 } else { r % 300 };
        let key = Key::new(format!("k:{k}")).unwrap();
        // Every fifth operation writes; the rest read, filling on a miss.
        let write = r.is_multiple_of(5) || cache.get(&key).await.unwrap().is_none();
        if write {
            cache.set(&key, value.clone(), None).await.unwrap();
        }
    }
    let mut keys: Vec<String> = cache.live_entries().into_iter().map(|(k, _)| k).collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "current_thread")]
async fn stalls_do_not_change_what_a_deterministic_store_evicts() {
    let calm = replay(true, Duration::ZERO).await;
    let stalled = replay(true, Duration::from_millis(350)).await;
    assert!(
        !calm.is_empty() && calm.len() < 3_000,
        "the store must evict: {} keys",
        calm.len()
    );
    assert_eq!(calm, stalled);
}

/// The hazard the option removes: moka applies its pending work when 300 ms
/// of wall time have passed, so a stalled run evicts differently.
#[tokio::test(flavor = "current_thread")]
async fn without_the_option_a_stall_changes_the_outcome() {
    let calm = replay(false, Duration::ZERO).await;
    let stalled = replay(false, Duration::from_millis(350)).await;
    assert_ne!(calm, stalled);
}
