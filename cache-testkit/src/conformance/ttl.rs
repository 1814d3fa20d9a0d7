//! The TTL points of the contract: expiry, `Some(ZERO)`, and TTLs too long
//! for the backend.

use std::time::Duration;

use bytes::Bytes;

use super::{b, key, unique_namespace};
use cache_core::backend::Backend;
use cache_core::error::Error;
use cache_core::key::Key;

/// Entries with a TTL are readable at once and gone after TTL + granularity;
/// `incr` keeps the TTL; `None` never expires; `add` may store again once the
/// entry expired.
pub async fn ttl_expiry(backend: &dyn Backend) {
    let ns = unique_namespace("ttl");
    let ttl = Duration::from_secs(1);
    let (a, c, p, m) = (
        key(&ns, "a"),
        key(&ns, "counter"),
        key(&ns, "persist"),
        key(&ns, "many"),
    );
    backend.set(&a, b("v"), Some(ttl)).await.unwrap();
    assert!(backend.add(&c, b("5"), Some(ttl)).await.unwrap());
    assert_eq!(backend.incr(&c, 1).await.unwrap(), 6);
    backend.set(&p, b("forever"), None).await.unwrap();
    backend.set_many(&[(m.clone(), b("m"))], Some(ttl)).await.unwrap();
    assert_eq!(backend.get(&a).await.unwrap(), Some(b("v")), "readable before its TTL");
    assert_eq!(backend.get(&m).await.unwrap(), Some(b("m")));

    let wait = ttl + backend.capabilities().ttl_granularity + Duration::from_millis(300);
    tokio::time::sleep(wait).await;
    let name = backend.name();
    assert_eq!(backend.get(&a).await.unwrap(), None, "{name}: set TTL not honoured");
    assert_eq!(
        backend.get(&m).await.unwrap(),
        None,
        "{name}: set_many TTL not honoured"
    );
    assert_eq!(backend.get(&c).await.unwrap(), None, "{name}: incr must keep the TTL");
    assert!(
        matches!(backend.incr(&c, 1).await, Err(Error::NotFound { .. })),
        "{name}: expired counter"
    );
    assert_eq!(
        backend.get(&p).await.unwrap(),
        Some(b("forever")),
        "{name}: no TTL means no expiry"
    );
    assert!(
        backend.add(&a, b("again"), None).await.unwrap(),
        "{name}: add after expiry stores"
    );
}

/// `Some(Duration::ZERO)`: `set` deletes, `add` stores nothing and returns false.
pub async fn ttl_zero(backend: &dyn Backend) {
    let ns = unique_namespace("ttl_zero");
    let (k, fresh) = (key(&ns, "k"), key(&ns, "fresh"));
    backend.set(&k, b("old"), None).await.unwrap();
    backend.set(&k, b("new"), Some(Duration::ZERO)).await.unwrap();
    assert_eq!(
        backend.get(&k).await.unwrap(),
        None,
        "{}: zero TTL set deletes",
        backend.name()
    );
    assert!(!backend.add(&fresh, b("x"), Some(Duration::ZERO)).await.unwrap());
    assert_eq!(backend.get(&fresh).await.unwrap(), None);
    backend.set(&k, b("kept"), None).await.unwrap();
    assert!(!backend.add(&k, b("x"), Some(Duration::ZERO)).await.unwrap());
    assert_eq!(
        backend.get(&k).await.unwrap(),
        Some(b("kept")),
        "zero TTL add leaves the entry"
    );
    backend
        .set_many(&[(k.clone(), b("gone"))], Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(backend.get(&k).await.unwrap(), None, "zero TTL set_many deletes");
}

/// Huge TTLs (`Duration::MAX`, `u64::MAX` seconds, `i64::MAX` seconds,
/// two centuries) through `set`, `set_many` and `add`: each call either
/// stores an entry that stays readable (clamped to the backend's longest
/// TTL, never wrapped to a short one) or returns
/// [`Error::InvalidTtl`] and leaves the previous entry untouched. Never a
/// panic.
pub async fn huge_ttl(backend: &dyn Backend) {
    let ns = unique_namespace("huge_ttl");
    let name = backend.name().to_owned();
    let ttls = [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(i64::MAX as u64),
        Duration::from_secs(200 * 366 * 86_400),
    ];
    // (key, value expected after the calls)
    let mut expect: Vec<(Key, Bytes)> = Vec::new();
    for (i, ttl) in ttls.into_iter().enumerate() {
        let (s, m, a) = (
            key(&ns, &format!("set{i}")),
            key(&ns, &format!("many{i}")),
            key(&ns, &format!("add{i}")),
        );
        for k in [&s, &m] {
            backend.set(k, b("old"), None).await.unwrap();
        }
        let outcome = |r: Result<(), Error>, what: &str| match r {
            Ok(()) => true,
            Err(Error::InvalidTtl { .. }) => false,
            Err(e) => panic!("{name}: {what} with TTL {ttl:?}: {e}"),
        };
        let stored = outcome(backend.set(&s, b("new"), Some(ttl)).await, "set");
        expect.push((s.clone(), b(if stored { "new" } else { "old" })));
        let stored = outcome(backend.set_many(&[(m.clone(), b("new"))], Some(ttl)).await, "set_many");
        expect.push((m.clone(), b(if stored { "new" } else { "old" })));
        match backend.add(&a, b("new"), Some(ttl)).await {
            Ok(true) => expect.push((a.clone(), b("new"))),
            Ok(false) => panic!("{name}: add of a fresh key with TTL {ttl:?} stored nothing"),
            Err(Error::InvalidTtl { .. }) => assert_eq!(backend.get(&a).await.unwrap(), None),
            Err(e) => panic!("{name}: add with TTL {ttl:?}: {e}"),
        }
    }
    for (k, v) in &expect {
        assert_eq!(
            backend.get(k).await.unwrap().as_ref(),
            Some(v),
            "{name}: {k} right after"
        );
    }
    // A TTL wrapped to something short would be gone by now.
    tokio::time::sleep(backend.capabilities().ttl_granularity + Duration::from_millis(1500)).await;
    for (k, v) in &expect {
        assert_eq!(
            backend.get(k).await.unwrap().as_ref(),
            Some(v),
            "{name}: {k} expired early: a huge TTL wrapped"
        );
    }
}
