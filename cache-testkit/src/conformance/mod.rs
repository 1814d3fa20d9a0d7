//! The shared behaviour suite: one public async function per point of the
//! [`Backend`] contract. Every backend runs it from its own tests, directly and
//! through `Box<dyn Backend>` / `Arc<dyn Backend>`, with
//! [`conformance_tests!`](crate::conformance_tests); a backend is done when it
//! passes unchanged.
//!
//! Functions panic (with a message naming the backend) when the backend breaks
//! the contract: they are test code. Each uses keys under a fresh namespace, so
//! several tests can share one server. Functions that need real parallelism
//! (`*_concurrent`) use `tokio::task::block_in_place` and therefore need the
//! multi-threaded runtime, which the macro sets up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use cache_core::backend::{Backend, Capabilities};
use cache_core::error::Error;
use cache_core::key::Key;

mod ttl;
pub use ttl::{huge_ttl, ttl_expiry, ttl_zero};

/// A namespace no other test (in this or another process) uses.
pub fn unique_namespace(test: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "conf:{test}:{}:{}:{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_007
    )
}

/// Views `backend` as `&dyn Backend` through its own `Backend` impl. For
/// `Box<dyn Backend>` and `Arc<dyn Backend>` that is the forwarding impl, so
/// the suite really exercises those wrappers (a plain `&*boxed` would not).
pub fn as_dyn<B: Backend>(backend: &B) -> &dyn Backend {
    backend
}

fn key(ns: &str, name: &str) -> Key {
    Key::new(format!("{ns}:{name}")).unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// `get` of a key never written is `None`.
pub async fn get_missing(backend: &dyn Backend) {
    let ns = unique_namespace("get_missing");
    assert_eq!(
        backend.get(&key(&ns, "nothing")).await.unwrap(),
        None,
        "{}",
        backend.name()
    );
}

/// `set` then `get` returns the same bytes.
pub async fn set_get_roundtrip(backend: &dyn Backend) {
    let ns = unique_namespace("roundtrip");
    let k = key(&ns, "k");
    backend.set(&k, b("hello"), None).await.unwrap();
    assert_eq!(backend.get(&k).await.unwrap(), Some(b("hello")), "{}", backend.name());
}

/// A second `set` replaces the first.
pub async fn set_overwrites(backend: &dyn Backend) {
    let ns = unique_namespace("overwrite");
    let k = key(&ns, "k");
    backend.set(&k, b("one"), None).await.unwrap();
    backend.set(&k, b("two"), Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(backend.get(&k).await.unwrap(), Some(b("two")), "{}", backend.name());
}

/// A zero-length value is stored and read back as `Some(empty)`, not `None`.
pub async fn zero_length_value(backend: &dyn Backend) {
    let ns = unique_namespace("zero_len");
    let k = key(&ns, "empty");
    backend.set(&k, Bytes::new(), None).await.unwrap();
    assert_eq!(backend.get(&k).await.unwrap(), Some(Bytes::new()), "{}", backend.name());
    assert_eq!(
        backend.get_many(std::slice::from_ref(&k)).await.unwrap(),
        vec![Some(Bytes::new())],
        "{}: get_many of an empty value",
        backend.name()
    );
    assert!(
        !backend.add(&k, b("x"), None).await.unwrap(),
        "an empty value is still an entry"
    );
}

/// Every byte value survives (values are opaque, not text).
pub async fn binary_value(backend: &dyn Backend) {
    let ns = unique_namespace("binary");
    let k = key(&ns, "bin");
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let v = Bytes::from(all);
    backend.set(&k, v.clone(), None).await.unwrap();
    assert_eq!(backend.get(&k).await.unwrap(), Some(v), "{}", backend.name());
}

/// A value of exactly `max_value_size` round-trips; one byte more is
/// `ValueTooLarge` and leaves the old value in place. Without a limit, a
/// 4 MiB value round-trips.
pub async fn large_value(backend: &dyn Backend) {
    let ns = unique_namespace("large");
    let k = key(&ns, "big");
    let caps = backend.capabilities();
    let size = caps.max_value_size.unwrap_or(4 << 20);
    let big = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    backend.set(&k, big.clone(), None).await.unwrap();
    assert_eq!(
        backend.get(&k).await.unwrap().as_ref(),
        Some(&big),
        "{}",
        backend.name()
    );
    if let Some(limit) = caps.max_value_size {
        let too_big = Bytes::from(vec![7u8; limit + 1]);
        let err = backend.set(&k, too_big.clone(), None).await.unwrap_err();
        match &err {
            Error::ValueTooLarge {
                size,
                limit: l,
                key: ek,
                ..
            } => {
                assert_eq!((*size, *l), (limit + 1, limit));
                assert_eq!(ek, k.as_str(), "the error names the key");
            }
            other => panic!("{}: expected ValueTooLarge, got {other:?}", backend.name()),
        }
        assert_eq!(backend.get(&k).await.unwrap().as_ref(), Some(&big), "old value kept");
        let err = backend
            .add(&key(&ns, "fresh"), too_big.clone(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ValueTooLarge { .. }), "add too large: {err:?}");
        let err = backend
            .set_many(&[(key(&ns, "m1"), b("ok")), (key(&ns, "m2"), too_big)], None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::ValueTooLarge { .. }),
            "set_many too large: {err:?}"
        );
        assert_eq!(
            backend.get(&key(&ns, "m1")).await.unwrap(),
            None,
            "set_many checks sizes before writing"
        );
    }
}

/// `add` stores only when absent and reports it; works again after `delete`.
pub async fn add_semantics(backend: &dyn Backend) {
    let ns = unique_namespace("add");
    let k = key(&ns, "k");
    assert!(backend.add(&k, b("first"), None).await.unwrap());
    assert!(!backend
        .add(&k, b("second"), Some(Duration::from_secs(60)))
        .await
        .unwrap());
    assert_eq!(backend.get(&k).await.unwrap(), Some(b("first")), "{}", backend.name());
    assert!(backend.delete(&k).await.unwrap());
    assert!(backend.add(&k, b("third"), None).await.unwrap());
    assert_eq!(backend.get(&k).await.unwrap(), Some(b("third")));
}

/// Runs `f(thread_index)` on `threads` OS threads at once, each driving its
/// future on the current Tokio runtime.
fn on_threads<F, Fut>(threads: usize, f: F) -> Vec<Fut::Output>
where
    F: Fn(usize) -> Fut + Sync,
    Fut: std::future::Future,
    Fut::Output: Send,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let joins: Vec<_> = (0..threads)
                .map(|i| {
                    let (handle, f) = (&handle, &f);
                    s.spawn(move || handle.block_on(f(i)))
                })
                .collect();
            joins
                .into_iter()
                .map(|j| j.join().expect("worker thread panicked"))
                .collect()
        })
    })
}

/// Sixteen threads `add` the same key at once: exactly one wins, and the
/// stored value is the winner's.
pub async fn add_concurrent_one_winner(backend: &dyn Backend) {
    for round in 0..5 {
        let ns = unique_namespace("add_race");
        let k = key(&ns, &format!("k{round}"));
        let results = on_threads(16, |i| {
            let k = k.clone();
            async move { backend.add(&k, Bytes::from(i.to_string()), None).await.unwrap() }
        });
        let winners: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, w)| **w)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "{}: add winners {winners:?}", backend.name());
        assert_eq!(
            backend.get(&k).await.unwrap(),
            Some(Bytes::from(winners[0].to_string()))
        );
    }
}

/// `incr` on a missing key is `NotFound` (naming backend and key) and
/// creates nothing.
pub async fn incr_missing_is_not_found(backend: &dyn Backend) {
    let ns = unique_namespace("incr_missing");
    let k = key(&ns, "nope");
    let err = backend.incr(&k, 3).await.unwrap_err();
    match &err {
        Error::NotFound { backend: name, key: ek } => {
            assert_eq!(name, backend.name());
            assert_eq!(ek, k.as_str());
        }
        other => panic!("{}: expected NotFound, got {other:?}", backend.name()),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(backend.name()) && msg.contains(k.as_str()),
        "message names both: {msg}"
    );
    assert_eq!(
        backend.get(&k).await.unwrap(),
        None,
        "{}: incr must not create",
        backend.name()
    );
}

/// `incr` adds, returns the new value, stores decimal digits; delta 0 reads.
pub async fn incr_adds(backend: &dyn Backend) {
    let ns = unique_namespace("incr");
    let k = key(&ns, "n");
    backend.set(&k, b("10"), None).await.unwrap();
    assert_eq!(backend.incr(&k, 5).await.unwrap(), 15);
    assert_eq!(backend.incr(&k, 0).await.unwrap(), 15);
    assert_eq!(backend.get(&k).await.unwrap(), Some(b("15")), "{}", backend.name());
    assert!(backend.add(&key(&ns, "z"), b("0"), None).await.unwrap());
    assert_eq!(backend.incr(&key(&ns, "z"), 1).await.unwrap(), 1);
    let big = (1u64 << 62) + 12345;
    backend
        .set(&key(&ns, "big"), Bytes::from(big.to_string()), None)
        .await
        .unwrap();
    assert_eq!(
        backend.incr(&key(&ns, "big"), 1).await.unwrap(),
        big + 1,
        "64-bit counters"
    );
}

/// `incr` on a value that is not a counter is `NotACounter`; nothing changes.
pub async fn incr_not_a_counter(backend: &dyn Backend) {
    let ns = unique_namespace("incr_nan");
    for (i, bad) in ["abc", "-5", "1.5", "", "+7", "99999999999999999999"]
        .iter()
        .enumerate()
    {
        let k = key(&ns, &format!("bad{i}"));
        backend.set(&k, b(bad), None).await.unwrap();
        let err = backend.incr(&k, 1).await.unwrap_err();
        assert!(
            matches!(err, Error::NotACounter { .. }),
            "{}: incr on {bad:?} gave {err:?}",
            backend.name()
        );
        assert_eq!(backend.get(&k).await.unwrap(), Some(b(bad)), "value untouched");
    }
}

/// Past `i64::MAX`, `incr` is `Overflow` and the value stays as it was.
pub async fn incr_overflow(backend: &dyn Backend) {
    let ns = unique_namespace("incr_overflow");
    let k = key(&ns, "n");
    let max = i64::MAX as u64;
    backend.set(&k, Bytes::from((max - 1).to_string()), None).await.unwrap();
    assert_eq!(backend.incr(&k, 1).await.unwrap(), max);
    for delta in [1, 1000, max, u64::MAX] {
        let err = backend.incr(&k, delta).await.unwrap_err();
        assert!(
            matches!(err, Error::Overflow { .. }),
            "{}: delta {delta}: {err:?}",
            backend.name()
        );
    }
    assert_eq!(
        backend.get(&k).await.unwrap(),
        Some(Bytes::from(max.to_string())),
        "value unchanged"
    );
    assert_eq!(backend.incr(&k, 0).await.unwrap(), max);
}

/// `threads` OS threads each `incr` one key `per_thread` times: no increment
/// is lost.
pub async fn incr_concurrent(backend: &dyn Backend, threads: usize, per_thread: u64) {
    let ns = unique_namespace("incr_concurrent");
    let k = key(&ns, "n");
    assert!(backend.add(&k, b("0"), None).await.unwrap());
    let maxima = on_threads(threads, |_| {
        let k = k.clone();
        async move {
            let mut last = 0;
            for _ in 0..per_thread {
                let n = backend.incr(&k, 1).await.unwrap();
                assert!(n > last, "each thread sees its counter grow");
                last = n;
            }
            last
        }
    });
    let expected = threads as u64 * per_thread;
    assert!(maxima.iter().all(|&m| m <= expected));
    assert_eq!(
        backend.incr(&k, 0).await.unwrap(),
        expected,
        "{}: lost increments",
        backend.name()
    );
    assert_eq!(backend.get(&k).await.unwrap(), Some(Bytes::from(expected.to_string())));
}

/// `delete` reports whether something was there; deleting twice is fine.
pub async fn delete_semantics(backend: &dyn Backend) {
    let ns = unique_namespace("delete");
    let k = key(&ns, "k");
    assert!(
        !backend.delete(&k).await.unwrap(),
        "{}: nothing to delete",
        backend.name()
    );
    backend.set(&k, b("v"), None).await.unwrap();
    assert!(backend.delete(&k).await.unwrap());
    assert_eq!(backend.get(&k).await.unwrap(), None);
    assert!(!backend.delete(&k).await.unwrap());
}

/// `get_many` keeps input order, reports misses as `None`, allows duplicates,
/// and an empty batch returns an empty vector.
pub async fn get_many_semantics(backend: &dyn Backend) {
    let ns = unique_namespace("get_many");
    let keys: Vec<Key> = (0..20).map(|i| key(&ns, &format!("k{i}"))).collect();
    for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        backend.set(k, Bytes::from(format!("v{i}")), None).await.unwrap();
    }
    let mut asked = keys.clone();
    asked.push(keys[0].clone());
    let got = backend.get_many(&asked).await.unwrap();
    assert_eq!(got.len(), asked.len());
    for (i, v) in got.iter().enumerate() {
        let i = i % 20;
        let want = (i % 3 == 0).then(|| Bytes::from(format!("v{i}")));
        assert_eq!(v, &want, "{}: position {i}", backend.name());
    }
    assert!(backend.get_many(&[]).await.unwrap().is_empty());
}

/// `set_many` stores every entry with the TTL given; an empty batch is a no-op.
pub async fn set_many_semantics(backend: &dyn Backend) {
    let ns = unique_namespace("set_many");
    let entries: Vec<(Key, Bytes)> = (0..50)
        .map(|i| (key(&ns, &format!("k{i}")), Bytes::from(format!("v{i}"))))
        .collect();
    backend.set_many(&entries, Some(Duration::from_secs(60))).await.unwrap();
    let keys: Vec<Key> = entries.iter().map(|(k, _)| k.clone()).collect();
    let got = backend.get_many(&keys).await.unwrap();
    let want: Vec<Option<Bytes>> = entries.iter().map(|(_, v)| Some(v.clone())).collect();
    assert_eq!(got, want, "{}", backend.name());
    backend.set_many(&[], None).await.unwrap();
    // Later entries win over earlier duplicates, as in a loop of `set`.
    let k = key(&ns, "dup");
    backend
        .set_many(&[(k.clone(), b("1")), (k.clone(), b("2"))], None)
        .await
        .unwrap();
    assert_eq!(backend.get(&k).await.unwrap(), Some(b("2")));
}

/// `delete_many` deletes all, counts the ones that existed.
pub async fn delete_many_semantics(backend: &dyn Backend) {
    let ns = unique_namespace("delete_many");
    let keys: Vec<Key> = (0..10).map(|i| key(&ns, &format!("k{i}"))).collect();
    for k in &keys[..6] {
        backend.set(k, b("v"), None).await.unwrap();
    }
    assert_eq!(backend.delete_many(&keys).await.unwrap(), 6, "{}", backend.name());
    assert!(backend.get_many(&keys).await.unwrap().iter().all(Option::is_none));
    assert_eq!(backend.delete_many(&keys).await.unwrap(), 0);
    assert_eq!(backend.delete_many(&[]).await.unwrap(), 0);
}

/// Keys with spaces, control characters, glob metacharacters, non-ASCII, and
/// long keys (sharing a 300-byte prefix) are all distinct, usable keys.
pub async fn unusual_keys(backend: &dyn Backend) {
    let ns = unique_namespace("unusual");
    let long_head = "L".repeat(300);
    let names = [
        "with space".to_owned(),
        "with\nnewline\tand\ttab".to_owned(),
        "ctrl\u{1}\u{7f}".to_owned(),
        "glob*?[]\\".to_owned(),
        "ünïcødé ключ 键".to_owned(),
        format!("{long_head}:a"),
        format!("{long_head}:b"),
        "x".repeat(4000),
        "{tag}braces".to_owned(),
    ];
    let keys: Vec<Key> = names.iter().map(|n| key(&ns, n)).collect();
    for (i, k) in keys.iter().enumerate() {
        backend.set(k, Bytes::from(i.to_string()), None).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            backend.get(k).await.unwrap(),
            Some(Bytes::from(i.to_string())),
            "{}: key {:?}",
            backend.name(),
            &names[i][..names[i].len().min(40)]
        );
    }
    let got = backend.get_many(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len());
    assert!(backend.add(&keys[5], b("x"), None).await.is_ok_and(|stored| !stored));
    assert_eq!(backend.delete_many(&keys).await.unwrap(), keys.len() as u64);
}

/// With `prefix_delete`, deleting `prefix` removes exactly the keys that start
/// with it (glob characters are literal); without, the call is `NotSupported`.
pub async fn prefix_delete(backend: &dyn Backend) {
    let ns = unique_namespace("prefix");
    let caps: Capabilities = backend.capabilities();
    let inside = ["p*:1", "p*:2", "p*:3:deep"];
    let outside = ["pX:1", "p:1", "q*:1", "p"];
    for n in inside.iter().chain(&outside) {
        backend.set(&key(&ns, n), b("v"), None).await.unwrap();
    }
    let prefix = format!("{ns}:p*:");
    if !caps.prefix_delete {
        let err = backend.delete_prefix(&prefix).await.unwrap_err();
        assert!(matches!(err, Error::NotSupported { .. }), "{}: {err:?}", backend.name());
        return;
    }
    assert_eq!(
        backend.delete_prefix(&prefix).await.unwrap(),
        inside.len() as u64,
        "{}",
        backend.name()
    );
    for n in inside {
        assert_eq!(backend.get(&key(&ns, n)).await.unwrap(), None, "{n} deleted");
    }
    for n in outside {
        assert_eq!(backend.get(&key(&ns, n)).await.unwrap(), Some(b("v")), "{n} kept");
    }
    assert_eq!(backend.delete_prefix(&prefix).await.unwrap(), 0);
}

/// Generates one `#[tokio::test]` per conformance function in a module named
/// after the configuration, so test names read
/// `conformance_locmem_direct::incr_concurrent`.
///
/// `$make` is an async expression yielding `(guard, backend)`: the guard (a
/// server process, `()` for none) lives as long as the test. `prefix_delete`
/// is the capability the backend is expected to declare.
///
/// ```ignore
/// cache_testkit::conformance_tests!(conformance_locmem_direct, prefix_delete = true,
///     async { ((), backend_locmem::LocmemBackend::new()) });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, prefix_delete = $prefix:expr, $make:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!(@tests $prefix, $make;
                get_missing, set_get_roundtrip, set_overwrites, zero_length_value,
                binary_value, large_value, ttl_expiry, ttl_zero, huge_ttl, add_semantics,
                add_concurrent_one_winner, incr_missing_is_not_found, incr_adds,
                incr_not_a_counter, incr_overflow, delete_semantics,
                get_many_semantics, set_many_semantics, delete_many_semantics,
                unusual_keys, prefix_delete);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn incr_concurrent_8x10000() {
                let (_guard, backend) = $make.await;
                $crate::conformance::incr_concurrent($crate::conformance::as_dyn(&backend), 8, 10_000).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn declares_expected_capabilities() {
                let (_guard, backend) = $make.await;
                let caps = $crate::__cache_core::Backend::capabilities(&backend);
                assert_eq!(caps.prefix_delete, $prefix, "prefix_delete capability");
            }
        }
    };
    (@tests $prefix:expr, $make:expr; $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_guard, backend) = $make.await;
            $crate::conformance::$name($crate::conformance::as_dyn(&backend)).await;
        }
    )*};
}
