//! `memcached` servers (see issue #4).
