//! The shared conformance suite on the in-process backend, in the three forms
//! callers hold it: the concrete type, `Box<dyn Backend>` and `Arc<dyn Backend>`.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_locmem::LocmemBackend;
use cache_core::Backend;

cache_testkit::conformance_tests!(conformance_locmem_direct, prefix_delete = true, async {
    ((), LocmemBackend::new())
});

cache_testkit::conformance_tests!(conformance_locmem_boxed, prefix_delete = true, async {
    ((), Box::new(LocmemBackend::new()) as Box<dyn Backend>)
});

cache_testkit::conformance_tests!(conformance_locmem_arc, prefix_delete = true, async {
    ((), Arc::new(LocmemBackend::new()) as Arc<dyn Backend>)
});

/// Issue #3's acceptance figure, on real threads: 8 × 10 000 increments of
/// one key through a shared `Arc<dyn Backend>` end at exactly 80 000.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_tasks_times_ten_thousand_incr_is_exactly_80000() {
    let backend: Arc<dyn Backend> = Arc::new(LocmemBackend::new());
    let key = cache_core::Key::new("counter").unwrap();
    assert!(backend
        .add(&key, cache_core::Bytes::from_static(b"0"), None)
        .await
        .unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (backend, key) = (backend.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..10_000 {
                    backend.incr(&key, 1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(backend.incr(&key, 0).await.unwrap(), 80_000);
}
