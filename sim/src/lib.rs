//! The invalidation simulator behind the `cache-sim` binary.
//!
//! Not built yet: issue #6 fills this crate.
