//! Behaviour beyond the conformance suite, on real `memcached` processes:
//! keys spread over a pool, a server killed and restarted under a running
//! backend.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::{Backend, Bytes, Error, Key};
use cache_testkit::memcached::{pool_url, MemcachedConfig, MemcachedServer};

fn key(i: usize) -> Key {
    Key::new(format!("spread:{i}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_both_servers_of_a_pool() {
    let servers = MemcachedServer::pool(2, &MemcachedConfig::default()).unwrap();
    let backend = MemcachedBackend::from_url(&pool_url(&servers)).await.unwrap();
    let entries: Vec<(Key, Bytes)> = (0..1000).map(|i| (key(i), Bytes::from(i.to_string()))).collect();
    backend.set_many(&entries, None).await.unwrap();

    // Each server really holds a share (asked directly with `stats`), and
    // together exactly the keys written.
    let counts: Vec<u64> = servers.iter().map(|s| s.stat_u64("curr_items").unwrap()).collect();
    assert_eq!(counts.iter().sum::<u64>(), 1000, "{counts:?}");
    for c in &counts {
        assert!((300..=700).contains(c), "unbalanced pool: {counts:?}");
    }
    // The backend's own routing agrees with where the keys landed.
    let on_first = (0..1000)
        .filter(|&i| backend.server_for(&key(i)) == servers[0].addr().to_string())
        .count() as u64;
    assert_eq!(on_first, counts[0]);

    // A second backend object (another "process") with the servers listed
    // in the other order routes every key the same way and reads them all.
    let reversed = format!("memcache://{},{}", servers[1].addr(), servers[0].addr());
    let other = MemcachedBackend::from_url(&reversed).await.unwrap();
    let keys: Vec<Key> = entries.iter().map(|(k, _)| k.clone()).collect();
    let got = other.get_many(&keys).await.unwrap();
    assert!(got.iter().zip(&entries).all(|(g, (_, v))| g.as_ref() == Some(v)));
}

/// Every kind of call, each bounded by `limit`; returns the errors.
async fn every_call_fails_fast(backend: &MemcachedBackend, limit: Duration) -> Vec<Error> {
    let k = Key::new("fault:k").unwrap();
    let keys = vec![k.clone(), Key::new("fault:other").unwrap()];
    let mut errors = Vec::new();
    macro_rules! call {
        ($e:expr) => {{
            let start = Instant::now();
            let r = $e.await;
            let took = start.elapsed();
            assert!(took <= limit, "{} took {took:?}, limit {limit:?}", stringify!($e));
            errors.push(r.map(drop).expect_err(stringify!($e)));
        }};
    }
    call!(backend.get(&k));
    call!(backend.set(&k, Bytes::from_static(b"v"), None));
    call!(backend.add(&k, Bytes::from_static(b"v"), Some(Duration::from_secs(5))));
    call!(backend.incr(&k, 1));
    call!(backend.delete(&k));
    call!(backend.get_many(&keys));
    call!(backend.set_many(&[(k.clone(), Bytes::from_static(b"v"))], None));
    call!(backend.delete_many(&keys));
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_gives_unavailable_fast_and_the_same_backend_recovers() {
    let mut server = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap();
    let timeout = Duration::from_millis(300);
    let backend = MemcachedBackend::connect(
        MemcachedOptions::new([server.addr().to_string()])
            .with_command_timeout(timeout)
            .with_connect_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let k = Key::new("fault:k").unwrap();
    backend.set(&k, Bytes::from_static(b"before"), None).await.unwrap();
    // Warm several pooled connections so the kill leaves dead ones behind.
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let (backend, k) = (backend.clone(), k.clone());
            tokio::spawn(async move { backend.get(&k).await })
        })
        .collect();
    for task in warm {
        assert_eq!(task.await.unwrap().unwrap(), Some(Bytes::from_static(b"before")));
    }

    server.stop();
    // Allow scheduling slack on a loaded machine beyond the timeout itself.
    let limit = timeout + Duration::from_millis(200);
    for e in every_call_fails_fast(&backend, limit).await {
        assert!(e.is_transient(), "expected Unavailable/Timeout, got {e:?}");
        let text = format!("{e} {:?}", std::error::Error::source(&e).map(ToString::to_string));
        assert!(text.contains("memcached"), "names the backend: {text}");
        if matches!(e, Error::Unavailable { .. }) {
            assert!(text.contains(&server.addr().to_string()), "names the server: {text}");
        }
    }

    server.start().unwrap();
    // Same object, no rebuild: the first call after the restart may still
    // meet a dead pooled connection, so allow a few attempts.
    let mut ok = false;
    for _ in 0..10 {
        if backend.set(&k, Bytes::from_static(b"after"), None).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "backend did not reconnect");
    assert_eq!(backend.get(&k).await.unwrap(), Some(Bytes::from_static(b"after")));
    assert!(backend
        .add(&Key::new("fault:n").unwrap(), Bytes::from_static(b"1"), None)
        .await
        .unwrap());
    assert_eq!(backend.incr(&Key::new("fault:n").unwrap(), 2).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_gives_timeout_within_the_limit() {
    // A listener that accepts connections but never replies: the kernel
    // completes the handshake, so only the command timeout can end a call.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = Duration::from_millis(250);
    let backend = MemcachedBackend::connect(MemcachedOptions::new([addr.to_string()]).with_command_timeout(timeout))
        .await
        .unwrap();
    for e in every_call_fails_fast(&backend, timeout + Duration::from_millis(200)).await {
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    }
    drop(listener);
}

#[tokio::test]
async fn unreachable_server_at_connect_names_host_and_port() {
    let port = cache_testkit::process::free_port().unwrap();
    let url = format!("memcache://127.0.0.1:{port}?connect_timeout_ms=300");
    let err = MemcachedBackend::from_url(&url).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let source = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(source.contains(&format!("127.0.0.1:{port}")), "{err} / {source}");

    // Opting out of the check builds the backend; calls then fail cleanly.
    let lazy = MemcachedBackend::from_url(&format!("{url}&check_on_connect=false"))
        .await
        .unwrap();
    let e = lazy.get(&Key::new("k").unwrap()).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dead_server_of_a_pool_fails_only_its_own_keys() {
    let mut servers = MemcachedServer::pool(2, &MemcachedConfig::default()).unwrap();
    let url = format!("{}?timeout_ms=300", pool_url(&servers));
    let backend = MemcachedBackend::from_url(&url).await.unwrap();
    let dead = servers[1].addr().to_string();
    let (on_dead, on_live): (Vec<Key>, Vec<Key>) = (0..50).map(key).partition(|k| backend.server_for(k) == dead);
    assert!(!on_dead.is_empty() && !on_live.is_empty());
    servers[1].stop();
    for k in &on_live {
        backend.set(k, Bytes::from_static(b"v"), None).await.unwrap();
        assert_eq!(backend.get(k).await.unwrap(), Some(Bytes::from_static(b"v")));
    }
    for k in &on_dead {
        let e = backend.get(k).await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
    }
    // A batch touching both servers fails (not transactional) naming the
    // dead server's key; after the restart it succeeds again.
    let both = vec![on_live[0].clone(), on_dead[0].clone()];
    assert!(backend.get_many(&both).await.unwrap_err().is_transient());
    servers[1].start().unwrap();
    let mut got = None;
    for _ in 0..10 {
        if let Ok(v) = backend.get_many(&both).await {
            got = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, Some(vec![Some(Bytes::from_static(b"v")), None]));
}
