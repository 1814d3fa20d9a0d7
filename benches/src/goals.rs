//! The goals BENCHMARKS.md checks: ratios against a baseline, and rates.

/// A goal from the issues: `subject`'s throughput in `group` must be at
/// least `min_ratio` × the `against` subject's.
#[derive(Debug, Clone, Copy)]
pub struct Goal {
    /// Result group.
    pub group: &'static str,
    /// Subject measured (usually `ours`).
    pub subject: &'static str,
    /// Subject compared with (usually `baseline`).
    pub against: &'static str,
    /// Minimum ratio.
    pub min_ratio: f64,
    /// Where the goal comes from.
    pub source: &'static str,
    /// What we know about why this goal can be missed, printed under the
    /// goals table when a run misses it (the issue asks every miss to say why).
    pub when_missed: &'static str,
}

/// The goals recorded in BENCHMARKS.md (issues #4, #7, #12, #17, #18, #30).
pub const GOALS: &[Goal] = &[
    Goal {
        group: "redis/stamped-hit/1-task",
        subject: "ours",
        against: "baseline",
        min_ratio: 1.0 / 1.15,
        source: "#12: a `stamped` hit through `RangeCache` ≤ 1.15× one raw GET (Redis, rounds alternating)",
        when_missed: "a hit is one MGET of the generation and the entry plus the envelope and stamp checks in `RangeCache`; against one GET the MGET carries one more key, and on 2 shared cores the rounds vary by ±15%",
    },
    Goal {
        group: "memcached/stamped-hit/1-task",
        subject: "ours",
        against: "baseline",
        min_ratio: 1.0 / 1.15,
        source: "#12: a `stamped` hit through `RangeCache` ≤ 1.15× one raw GET (Memcached, rounds alternating)",
        when_missed: "a hit is one pipelined pair of meta gets (generation and entry) plus the envelope and stamp checks in `RangeCache`; against one raw GET that is one more key to encode, send and parse, and on 2 shared cores the rounds vary by ±15%",
    },
    Goal {
        group: "locmem/get_hit",
        subject: "ours",
        against: "baseline",
        min_ratio: 0.8,
        source: "#7: locmem ≥ 0.8× raw moka (get)",
        when_missed: "our `get` hashes the key into its fingerprint, adds an `async_trait` boxed future, clones the entry's full key (an `Arc<str>`, compared on every lookup so a fingerprint collision reads as a miss) and checks the logical expiry",
    },
    Goal {
        group: "locmem/set",
        subject: "ours",
        against: "baseline",
        min_ratio: 0.8,
        source: "#7: locmem ≥ 0.8× raw moka (set)",
        when_missed: "our `set` copies the `&Key` into the entry inside the timed call (the baseline gets its `String` from untimed setup), hashes it and takes a write-stripe lock, which keeps `set` linearizable with `incr`",
    },
    Goal {
        group: "locmem/set",
        subject: "deterministic",
        against: "ours",
        min_ratio: 1.0 / 1.3,
        source: "#30: a deterministic locmem `set` (the simulator's stores) ≤ 1.3× one in moka's default mode",
        when_missed: "a deterministic store applies moka's pending work after every write (every other schedule lets a stall in wall time reorder reads and writes: see `LocmemBuilder::deterministic`); each application pays moka's fixed costs (its maintenance locks and a crossbeam-epoch flush that copies a 2 KiB bag) that the default mode pays once per 64 operations",
    },
    Goal {
        group: "sim/realistic/locmem",
        subject: "1-thread",
        against: "store-only",
        min_ratio: 0.8,
        source: "#30: the simulator ≥ 0.8× a replay of its own store calls alone (`realistic`, 1 thread)",
        when_missed: "above the store, each request runs the library's read path (the strategy's plan and key building, the flow, the envelope, counting every call) and the simulator's own work (the event queue, the database's answer on a miss, the stale-read judgement on a hit); the `sim` crate docs' \"Performance\" has the profile",
    },
    Goal {
        group: "sim/realistic/locmem",
        subject: "2-threads",
        against: "1-thread",
        min_ratio: 1.8,
        source: "#30: `realistic` on 2 threads ≥ 1.8× on 1 thread",
        when_missed: "two cells in one process slow each other's stores through crossbeam-epoch's process-global collector, which moka flushes to after every update and every maintenance run: the same store calls replayed alone scale only 1.22–1.29× on two threads (`store-only-2-threads`); `perf`: crossbeam-epoch 4.9% of the CPU on one thread, 12.1% on two. Cells in two processes share nothing: `2-processes` (`cache-sim --processes 2`, same report) runs at 1.91–1.93× one thread (1.94–2.14× at 23:09 UTC). One cell of a multi-process trace splits into shards of its app processes (`sim/one-cell-4-processes`)",
    },
    Goal {
        group: "redis/get/64-tasks",
        subject: "ours",
        against: "baseline",
        min_ratio: 0.9,
        source: "#4/#7: Redis ≥ 0.9× raw multiplexed connection at 64 tasks",
        when_missed: "the backend adds a `tokio::time::timeout` and error mapping per call over the same multiplexed connection; on 2 shared cores the rounds vary by ±15%",
    },
    Goal {
        group: "redis/get/50-conns-vs-redis-benchmark",
        subject: "ours",
        against: "redis-benchmark",
        min_ratio: 3.0,
        source: "#7: Redis ≥ 3× redis-benchmark (no pipelining, 50 connections)",
        when_missed: "multiplexing pipelines implicitly, but redis-benchmark, our client and redis-server share 2 cores, so the ratio is bounded by the server's own CPU; measured 2.96–3.5× across runs",
    },
    Goal {
        group: "memcached/get/64-tasks",
        subject: "ours",
        against: "memaslap-50",
        min_ratio: 0.9,
        source: "#17: Memcached ≥ 0.9× memaslap at 50 connections (64 tasks)",
        when_missed: "our 64 tasks share one pipelined meta-protocol connection: each request is encoded, queued and its reply parsed and handed over through a oneshot, all on the same 2 cores as memcached's threads and memaslap; memaslap's C client spends less CPU per request, which on 2 shared cores is what limits both",
    },
    Goal {
        group: "memcached/get/1-task",
        subject: "ours",
        against: "memaslap-1",
        min_ratio: 0.9,
        source: "#17: Memcached ≥ 0.9× memaslap at 1 connection (1 task)",
        when_missed: "one request at a time is pure round-trip latency. Per get, this client and memaslap make the same three system calls and spend the same CPU (27 µs), 83% of it in the kernel's wake-up path, and standalone runs reach 0.91–1.37× memaslap, re-runs of this suite 0.97–1.00×: a run at 0.83× is a noisy spell on a shared 2-core VM (backend-memcached crate docs, \"Performance\", has the strace and perf figures)",
    },
    Goal {
        group: "two_tier/hit/8KiB",
        subject: "two-tier+backplane",
        against: "baseline",
        min_ratio: 5.0,
        source: "#18: a two-tier hit with a backplane ≥ 5× faster than L2 alone (Redis, 8 KiB feed, rounds alternating)",
        when_missed: "with known generations a hit makes no round trip; a miss here means the generations were not known (subscription down, or trust expired on every round)",
    },
    Goal {
        group: "two_tier/hit/8KiB",
        subject: "two-tier",
        against: "baseline",
        min_ratio: 1.5,
        source: "#18: a two-tier hit without a backplane ≥ 1.5× faster than L2 alone (Redis, 8 KiB feed, rounds alternating)",
        when_missed: "both make exactly one round trip per hit; what two tiers save is moving the feed (8 KiB against ~20 B), which on loopback costs a few µs of a ~50–100 µs round trip, so the gain needs a real network or a larger feed (see the 64 KiB and 512 KiB groups)",
    },
    Goal {
        group: "two_tier/hit/8KiB",
        subject: "two-tier+tracking",
        against: "baseline",
        min_ratio: 50.0,
        source: "#28: a tracked two-tier hit ≥ 50× faster than L2 alone (Redis, 8 KiB feed, rounds alternating)",
        when_missed: "a tracked hit makes no round trip (L2 bytes per hit 0 in every round), so the ratio is an L2 round trip over an in-process hit: on loopback an 8 KiB GET from Redis takes 20-45 µs and a tracked hit 1.7-4.5 µs, about 10-13×; 50× needs an L2 that answers in 85 µs or more (a real network, or the busy loopback of the 2026-12-01 run, where the backplane's identical in-process path measured 57.8×)",
    },
];

/// A goal stated as a rate: `subject` in `group` must reach
/// `min_ops_per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct RateGoal {
    /// Result group.
    pub group: &'static str,
    /// Subject measured.
    pub subject: &'static str,
    /// Minimum operations (requests) per second.
    pub min_ops_per_sec: f64,
    /// Where the goal comes from.
    pub source: &'static str,
    /// Why it can be missed, printed when a run misses it.
    pub when_missed: &'static str,
}

/// The rate goals recorded in BENCHMARKS.md (#17, #30).
pub const RATE_GOALS: &[RateGoal] = &[
    RateGoal {
        group: "memcached/get/64-tasks",
        subject: "ours",
        min_ops_per_sec: 100_000.0,
        source: "#17: Memcached ≥ 100k GET/s at 64 tasks",
        when_missed: "client, server and load generator share 2 cores; see the ratio goal above",
    },
    RateGoal {
        group: "sim/realistic/locmem",
        subject: "2-threads",
        min_ops_per_sec: 500_000.0,
        source: "#30: simulator ≥ 500k simulated feed requests/s on `realistic` (locmem, 2 threads; #17 asked 1M)",
        when_missed: "one thread runs 180–200k/s, so 500k/s needs 250k/s per core even with perfect scaling; two threads of one process also contend in crossbeam-epoch's global collector (1.59–1.70×); the cells in two processes (`2-processes`, `cache-sim --processes 2`) reach 381k/s (304k/s in the 23:09 UTC run, the VM 20–25% slower in every figure); the `sim` crate docs' \"Performance\" has the profile",
    },
];
