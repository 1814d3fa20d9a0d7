//! Issue 15: the item size limit is read from the server (`stats settings`)
//! at connect, so a value too large for a `-I 512k` server is refused before
//! sending and the old value survives (memcached itself would delete it).
#![allow(missing_docs)]

use backend_memcached::options::ITEM_OVERHEAD;
use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::{Backend, Bytes, Error, Key};
use cache_testkit::memcached::{pool_url, MemcachedConfig, MemcachedServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_item_size_is_read_from_the_server_and_keeps_the_old_value() {
    let server = MemcachedServer::spawn(&MemcachedConfig::default().item_size(512 * 1024)).unwrap();
    // The URL says nothing about the item size: the client assumes 1 MiB.
    let backend = MemcachedBackend::from_url(&server.url()).await.unwrap();
    let limit = 512 * 1024 - ITEM_OVERHEAD;
    assert_eq!(backend.options().max_value_size, limit);
    assert_eq!(backend.capabilities().max_value_size, Some(limit));

    let key = Key::new(format!("item-size:{}", "k".repeat(230))).unwrap();
    backend.set(&key, Bytes::from_static(b"old"), None).await.unwrap();
    let e = backend
        .set(&key, Bytes::from(vec![b'x'; 700 * 1024]), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ValueTooLarge { limit: l, .. } if l == limit), "{e}");
    assert_eq!(backend.get(&key).await.unwrap(), Some(Bytes::from_static(b"old")));

    // The derived limit is not too generous: a value of exactly the limit,
    // under a long key, is stored.
    let at_limit = Bytes::from(vec![b'y'; limit]);
    backend.set(&key, at_limit.clone(), None).await.unwrap();
    assert_eq!(backend.get(&key).await.unwrap(), Some(at_limit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_takes_its_smallest_server_and_an_explicit_cap_still_applies() {
    let big = MemcachedServer::spawn(&MemcachedConfig::default().item_size(2 * 1024 * 1024)).unwrap();
    let small = MemcachedServer::spawn(&MemcachedConfig::default().item_size(512 * 1024)).unwrap();
    let servers = [big, small];
    let backend = MemcachedBackend::from_url(&pool_url(&servers)).await.unwrap();
    assert_eq!(backend.options().max_value_size, 512 * 1024 - ITEM_OVERHEAD);

    // A configured cap below the servers' limit is kept.
    let opts = MemcachedOptions::new([servers[0].addr().to_string()]).with_max_value_size(1000);
    let capped = MemcachedBackend::connect(opts).await.unwrap();
    assert_eq!(capped.options().max_value_size, 1000);
    // And a configured size above it is lowered to it.
    let opts = MemcachedOptions::new([servers[0].addr().to_string()]).with_item_size(64 * 1024 * 1024);
    let lowered = MemcachedBackend::connect(opts).await.unwrap();
    assert_eq!(lowered.options().max_value_size, 2 * 1024 * 1024 - ITEM_OVERHEAD);
}
