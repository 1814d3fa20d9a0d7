//! Memcached backend for `cache-core` (one server or a pool).
//!
//! Not built yet: issue #4 fills this crate.
