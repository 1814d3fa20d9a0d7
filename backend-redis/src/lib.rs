//! Redis backend for `cache-core` (single node and Redis Cluster).
//!
//! Not built yet: issue #4 ("Redis (single node and Cluster) and Memcached
//! backends, on real servers") fills this crate.
