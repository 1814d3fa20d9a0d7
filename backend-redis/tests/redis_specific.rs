//! Behaviour specific to Redis that the shared suite does not pin down:
//! how `incr` treats values Redis's own `INCRBY` would handle differently,
//! TTL preservation as seen by the server, and hash-tagged batches.
#![allow(missing_docs)]

use std::time::Duration;

use backend_redis::RedisBackend;
use cache_core::{Backend, Bytes, Error, Key};
use cache_testkit::redis::{command, RedisServer};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

async fn single() -> (RedisServer, RedisBackend) {
    let server = RedisServer::new().unwrap();
    let backend = RedisBackend::connect(server.url()).await.unwrap();
    (server, backend)
}

#[tokio::test]
async fn incr_accepts_leading_zeros_and_restores_them_on_overflow() {
    let (_server, b) = single().await;
    let k = key("zeros");
    b.set(&k, Bytes::from_static(b"007"), None).await.unwrap();
    assert_eq!(b.incr(&k, 0).await.unwrap(), 7);
    assert_eq!(
        b.get(&k).await.unwrap(),
        Some(Bytes::from_static(b"007")),
        "delta 0 writes nothing"
    );
    assert_eq!(b.incr(&k, 1).await.unwrap(), 8);
    assert_eq!(b.get(&k).await.unwrap(), Some(Bytes::from_static(b"8")));

    // 19 characters with a leading zero: a counter; overflow leaves it as is.
    let big = "0922337203685477580";
    b.set(&k, Bytes::from(big), None).await.unwrap();
    let err = b.incr(&k, i64::MAX as u64).await.unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err:?}");
    assert_eq!(b.get(&k).await.unwrap(), Some(Bytes::from(big)));
    assert_eq!(b.incr(&k, 7).await.unwrap(), 922_337_203_685_477_587);
}

#[tokio::test]
async fn incr_on_a_non_string_value_is_not_a_counter() {
    let (server, b) = single().await;
    command(server.port(), &["RPUSH", "a-list", "x"]).unwrap();
    let err = b.incr(&key("a-list"), 1).await.unwrap_err();
    assert!(matches!(err, Error::NotACounter { .. }), "{err:?}");
}

#[tokio::test]
async fn incr_keeps_the_ttl_and_ttls_are_milliseconds() {
    let (server, b) = single().await;
    let k = key("ttl-counter");
    assert!(b
        .add(&k, Bytes::from_static(b"1"), Some(Duration::from_secs(100)))
        .await
        .unwrap());
    b.incr(&k, 5).await.unwrap();
    let pttl: i64 = command(server.port(), &["PTTL", "ttl-counter"])
        .unwrap()
        .parse()
        .unwrap();
    assert!((90_000..=100_000).contains(&pttl), "PTTL {pttl}");

    // A sub-millisecond TTL rounds up to 1 ms rather than to "no expiry".
    let tiny = key("tiny");
    b.set(&tiny, Bytes::from_static(b"x"), Some(Duration::from_micros(10)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.get(&tiny).await.unwrap(), None);
}

#[tokio::test]
async fn delete_prefix_spans_many_scan_batches() {
    let (_server, b) = single().await;
    let entries: Vec<(Key, Bytes)> = (0..2500)
        .map(|i| (key(&format!("feed:{{cal:1}}:{i}")), Bytes::from_static(b"v")))
        .collect();
    b.set_many(&entries, None).await.unwrap();
    b.set(&key("feed:{cal:2}:0"), Bytes::from_static(b"keep"), None)
        .await
        .unwrap();
    assert_eq!(b.delete_prefix("feed:{cal:1}:").await.unwrap(), 2500);
    assert_eq!(
        b.get(&key("feed:{cal:2}:0")).await.unwrap(),
        Some(Bytes::from_static(b"keep"))
    );
}

#[tokio::test]
async fn value_limit_is_configurable() {
    let server = RedisServer::new().unwrap();
    let b = RedisBackend::builder(server.url())
        .max_value_size(10)
        .build()
        .await
        .unwrap();
    assert_eq!(b.capabilities().max_value_size, Some(10));
    b.set(&key("k"), Bytes::from_static(b"0123456789"), None).await.unwrap();
    let err = b
        .set(&key("k"), Bytes::from_static(b"0123456789a"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValueTooLarge {
                size: 11,
                limit: 10,
                ..
            }
        ),
        "{err:?}"
    );
}
