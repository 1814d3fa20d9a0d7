//! `rediss://` against a real `redis-server` with TLS on (a throwaway CA made
//! by the `openssl` tool): the whole conformance suite over TLS, and the
//! failures a misconfigured client must report instead of silently
//! connecting.
#![cfg(feature = "tls")]
#![allow(missing_docs)]

use std::time::Duration;

use backend_redis::RedisBackend;
use cache_core::{Backend, Bytes, Error, Key};
use cache_testkit::redis::RedisTlsServer;

async fn tls() -> (RedisTlsServer, RedisBackend) {
    let server = RedisTlsServer::new().unwrap();
    let backend = RedisBackend::builder(server.tls_url())
        .tls_root_certificates(server.ca_pem().to_vec())
        .build()
        .await
        .unwrap();
    (server, backend)
}

cache_testkit::conformance_tests!(conformance_redis_tls, prefix_delete = true, async { tls().await });

#[tokio::test]
async fn data_written_over_tls_is_the_servers() {
    let (server, backend) = tls().await;
    let key = Key::new("tls:{cal:1}:probe").unwrap();
    backend.set(&key, Bytes::from_static(b"over tls"), None).await.unwrap();
    // Read back through the plain port: the same server, not a stand-in.
    let plain = RedisBackend::connect(server.plain().url()).await.unwrap();
    assert_eq!(plain.get(&key).await.unwrap().as_deref(), Some(&b"over tls"[..]));
}

#[tokio::test]
async fn an_unknown_ca_is_refused() {
    let server = RedisTlsServer::new().unwrap();
    // Only the public roots: the test CA is not among them.
    let err = RedisBackend::builder(server.tls_url())
        .connect_timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Backend { .. }),
        "{err:?}"
    );
    assert!(text.contains("127.0.0.1"), "the error names the server: {text}");
    assert!(text.contains("certificate"), "and says why: {text}");
}

#[tokio::test]
async fn plain_redis_on_the_tls_port_fails_and_certificates_need_rediss() {
    let server = RedisTlsServer::new().unwrap();
    let plain_to_tls = format!("redis://127.0.0.1:{}/", server.tls_port());
    let err = RedisBackend::builder(plain_to_tls)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .build()
        .await;
    match err {
        Err(e) => assert!(!e.to_string().is_empty()),
        // Some client versions connect lazily: then the first command fails.
        Ok(b) => assert!(b.get(&Key::new("k").unwrap()).await.is_err()),
    }
    let err = RedisBackend::builder(server.plain().url())
        .tls_root_certificates(server.ca_pem().to_vec())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("rediss://"), "{err}");
}
