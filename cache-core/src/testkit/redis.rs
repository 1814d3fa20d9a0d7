//! A single `redis-server` and a three-master Redis Cluster (see issue #4).
