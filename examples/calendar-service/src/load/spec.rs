//! What a run is made of: rows (`STRATEGY@CACHE[@FAULT,…]`), the cache
//! each row uses, the faults injected into it, and the fail-safe settings
//! its services run with. Parsed from `--row` values; every error names the
//! value and what is wrong with it.

use std::time::Duration;

/// A cache as the service's `--cache` URL, with `redis` and `memcache`
/// standing for the servers the tool starts for the row: `locmem`,
/// `locmem:64`, `redis`, `memcache`, `none`, `two-tier:locmem+memcache`,
/// `two-tier/backplane:locmem:64+redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    template: String,
}

/// The base forms a cache (or a two-tier L2) may take.
fn base_ok(s: &str) -> bool {
    matches!(s, "locmem" | "redis" | "memcache" | "none")
        || s.strip_prefix("locmem:")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| (1..=1 << 20).contains(&n))
}

impl CacheSpec {
    /// Parses a cache template (see the type's docs).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "cache {s:?}: {why}; expected locmem, locmem:<MiB>, redis, memcache, none, or \
                 two-tier[/backplane[,trust=<s>] | /tracking]:locmem[:<MiB>]+redis|memcache"
            )
        };
        if let Some(rest) = s.strip_prefix("two-tier") {
            let tiers = match rest.strip_prefix('/') {
                Some(r) => r.split_once(':').map(|(_, t)| t).ok_or_else(|| bad("missing ':'"))?,
                None => rest.strip_prefix(':').ok_or_else(|| bad("missing ':'"))?,
            };
            let (l1, l2) = tiers.split_once('+').ok_or_else(|| bad("missing '+'"))?;
            if !(l1 == "locmem" || l1.starts_with("locmem:")) || !base_ok(l1) {
                return Err(bad("L1 must be locmem or locmem:<MiB>"));
            }
            if !matches!(l2, "redis" | "memcache") {
                return Err(bad("L2 must be redis or memcache (the tool's own server)"));
            }
            if rest.contains("backplane") && l2 != "redis" {
                return Err(bad("a backplane needs the redis L2"));
            }
            if rest.contains("tracking") && l2 != "redis" {
                return Err(bad("tracking needs the redis L2"));
            }
        } else if !base_ok(s) {
            return Err(bad("unknown form"));
        }
        Ok(CacheSpec { template: s.to_owned() })
    }

    /// The template as given: the row's label.
    pub fn label(&self) -> &str {
        &self.template
    }

    /// The last `+`-part (the L2 of two tiers), or the whole template.
    fn store(&self) -> &str {
        self.template.rsplit('+').next().unwrap_or(&self.template)
    }

    /// The row needs a Redis server.
    pub fn uses_redis(&self) -> bool {
        self.store() == "redis"
    }

    /// The row needs a Memcached server.
    pub fn uses_memcached(&self) -> bool {
        self.store() == "memcache"
    }

    /// Two tiers kept coherent over Redis pub/sub.
    pub fn has_backplane(&self) -> bool {
        self.template.starts_with("two-tier/") && self.template.contains("backplane")
    }

    /// The `none` cache: nothing is stored.
    pub fn is_none(&self) -> bool {
        self.template == "none"
    }

    /// The service's `--cache` URL with the servers' URLs put in.
    pub fn url(&self, redis: Option<&str>, memcache: Option<&str>) -> String {
        let head = &self.template[..self.template.len() - self.store().len()];
        let store = match self.store() {
            "redis" => redis.unwrap_or("redis"),
            "memcache" => memcache.unwrap_or("memcache"),
            other => other,
        };
        format!("{head}{store}")
    }

    /// The simulator's `--backend` spec for the same cache, on the given
    /// servers, with a modelled backplane delivering in `backplane_us` of
    /// trace time, and tracking as Redis's own (the simulator runs a
    /// `RedisTracker` per process, delivering with each write); `None` for
    /// `none`, which the simulator does not have.
    pub fn sim_spec(&self, redis: Option<&str>, memcache: Option<&str>, backplane_us: u64) -> Option<String> {
        if self.is_none() {
            return None;
        }
        let url = self.url(redis, memcache);
        let Some(rest) = url.strip_prefix("two-tier/") else {
            return Some(url);
        };
        let (options, tiers) = rest.split_once(':')?;
        let mut sim_options = Vec::new();
        for option in options.split(',') {
            match option {
                "backplane" => sim_options.insert(0, format!("backplane={backplane_us}")),
                "tracking" => sim_options.insert(0, "tracking".to_owned()),
                o if o.starts_with("trust=") => sim_options.push(o.to_owned()),
                // The channel name does not change what the model does.
                _ => {}
            }
        }
        Some(if sim_options.is_empty() {
            format!("two-tier:{tiers}")
        } else {
            format!("two-tier/{}:{tiers}", sim_options.join(","))
        })
    }
}

/// A fault injected while a row runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// `kill -9` of the row's cache server, then a restart on the same
    /// port, empty: every generation is lost.
    Kill,
    /// `SIGSTOP` of the row's cache server, `SIGCONT` after the duration.
    Stop {
        /// How long the server stays frozen.
        for_ms: u64,
    },
    /// `CLIENT KILL TYPE pubsub` on Redis: the backplane's subscriptions
    /// drop (the services resubscribe).
    PubsubKill,
    /// `kill -9` of service process 0, then a restart on the same port; its
    /// requests go to the next process meanwhile.
    ServiceRestart,
    /// Redis runs with `maxmemory` this small and `allkeys-lru` for the
    /// whole row.
    MaxMemory {
        /// The `maxmemory` setting, bytes.
        bytes: u64,
    },
    /// The services' feed query fails for a while (`POST /test/db-fault`
    /// to every process, `{"kind": "outage"}`).
    DbOutage {
        /// How long, ms.
        for_ms: u64,
    },
    /// The services' feed query takes `latency_ms` longer for a while
    /// (`{"kind": "slow"}`).
    DbSlow {
        /// Added latency per query, ms.
        latency_ms: u64,
        /// How long, ms.
        for_ms: u64,
    },
}

impl FaultKind {
    /// The name used in rows and in `load.json`.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop { .. } => "stop",
            FaultKind::PubsubKill => "pubsub-kill",
            FaultKind::ServiceRestart => "service-restart",
            FaultKind::MaxMemory { .. } => "maxmemory",
            FaultKind::DbOutage { .. } => "db-outage",
            FaultKind::DbSlow { .. } => "db-slow",
        }
    }

    /// A fault of the database (the services get `--test-db-faults`).
    pub fn is_db(&self) -> bool {
        matches!(self, FaultKind::DbOutage { .. } | FaultKind::DbSlow { .. })
    }
}

/// A fault and when it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// Seconds after the row's traffic starts (default: half-way);
    /// ignored for `maxmemory`, a condition of the whole row.
    pub at: Option<Duration>,
}

/// Default `stop` duration.
pub const DEFAULT_STOP: Duration = Duration::from_secs(2);
/// Default `maxmemory`: 2 MiB, far below a row's working set.
pub const DEFAULT_MAXMEMORY: u64 = 2 << 20;
/// Default duration of `db-outage` and `db-slow`: 10 s, the issue's "the
/// database locked for 10 s" (at 120x, 20 minutes of trace time).
pub const DEFAULT_DB_FAULT: Duration = Duration::from_secs(10);
/// The longest `db-slow` latency, ms (the simulator's limit is 10 minutes
/// of trace time; the client's timeout ends a request long before).
pub const MAX_DB_LATENCY_MS: u64 = 600_000;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    let secs: f64 = s.strip_suffix('s').unwrap_or(s).parse().ok()?;
    (0.0..=3600.0).contains(&secs).then(|| Duration::from_secs_f64(secs))
}

fn parse_bytes(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale).filter(|&b| b >= 1 << 20)
}

impl Fault {
    /// Parses `NAME[=ARG][:AT_S]`: `kill`, `kill:12`, `stop=2s`,
    /// `stop=500ms:10`, `pubsub-kill`, `service-restart`, `maxmemory=2mb`,
    /// `db-outage`, `db-outage=5s:8`, `db-slow=800`, `db-slow=800ms/5s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "fault {s:?}: {why}; expected kill, stop[=<duration>], pubsub-kill, service-restart, \
                 maxmemory[=<size, at least 1mb>], db-outage[=<duration>] or db-slow=<latency ms>[/<duration>], \
                 each optionally followed by :<seconds after the start>"
            )
        };
        let (head, at) = match s.rsplit_once(':') {
            Some((h, at)) => (
                h,
                Some(
                    parse_duration(at)
                        .filter(|_| !at.ends_with("ms"))
                        .ok_or_else(|| bad("the time after ':' is seconds"))?,
                ),
            ),
            None => (s, None),
        };
        let (name, arg) = match head.split_once('=') {
            Some((n, a)) => (n, Some(a)),
            None => (head, None),
        };
        let kind = match (name, arg) {
            ("kill", None) => FaultKind::Kill,
            ("stop", arg) => {
                let d = match arg {
                    Some(a) => parse_duration(a).ok_or_else(|| bad("the duration is like 2s or 500ms"))?,
                    None => DEFAULT_STOP,
                };
                if d.is_zero() {
                    return Err(bad("a stop lasts more than 0"));
                }
                FaultKind::Stop { for_ms: millis(d) }
            }
            ("pubsub-kill", None) => FaultKind::PubsubKill,
            ("service-restart", None) => FaultKind::ServiceRestart,
            ("maxmemory", arg) => FaultKind::MaxMemory {
                bytes: match arg {
                    Some(a) => parse_bytes(a).ok_or_else(|| bad("the size is like 2mb (at least 1mb)"))?,
                    None => DEFAULT_MAXMEMORY,
                },
            },
            ("db-outage", arg) => {
                let d = match arg {
                    Some(a) => parse_duration(a).ok_or_else(|| bad("the duration is like 10s or 500ms"))?,
                    None => DEFAULT_DB_FAULT,
                };
                if d.is_zero() {
                    return Err(bad("an outage lasts more than 0"));
                }
                FaultKind::DbOutage { for_ms: millis(d) }
            }
            ("db-slow", Some(a)) => {
                let (latency, duration) = match a.split_once('/') {
                    Some((l, d)) => (l, Some(d)),
                    None => (a, None),
                };
                let latency_ms = latency
                    .strip_suffix("ms")
                    .unwrap_or(latency)
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| (1..=MAX_DB_LATENCY_MS).contains(ms))
                    .ok_or_else(|| bad("the latency is milliseconds in 1..=600000, like 800 or 800ms"))?;
                let d = match duration {
                    Some(d) => parse_duration(d).ok_or_else(|| bad("the duration after '/' is like 10s or 500ms"))?,
                    None => DEFAULT_DB_FAULT,
                };
                if d.is_zero() {
                    return Err(bad("a slow window lasts more than 0"));
                }
                FaultKind::DbSlow {
                    latency_ms,
                    for_ms: millis(d),
                }
            }
            ("db-slow", None) => return Err(bad("db-slow needs a latency, like db-slow=800")),
            (_, Some(_)) if matches!(name, "kill" | "pubsub-kill" | "service-restart") => {
                return Err(bad("takes no argument"))
            }
            _ => return Err(bad("unknown fault")),
        };
        Ok(Fault { kind, at })
    }

    /// Why this fault cannot strike a row on `cache`, if it cannot.
    pub fn unusable_with(&self, cache: &CacheSpec) -> Option<&'static str> {
        match self.kind {
            FaultKind::Kill | FaultKind::Stop { .. } if !cache.uses_redis() && !cache.uses_memcached() => {
                Some("needs a cache server (redis or memcache)")
            }
            FaultKind::PubsubKill if !cache.has_backplane() => Some("needs two-tier/backplane (Redis pub/sub)"),
            FaultKind::MaxMemory { .. } if !cache.uses_redis() => Some("needs redis"),
            _ => None,
        }
    }
}

/// Fail-safe and the feed query's timeouts as a row's services run with
/// them (`--fail-safe-s`, `--soft-timeout-ms`, `--hard-timeout-ms`; `None`:
/// not given, off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FailSafeSettings {
    /// The fail-safe max age, s.
    pub fail_safe_s: Option<u64>,
    /// The soft timeout, ms (needs fail-safe).
    pub soft_timeout_ms: Option<u64>,
    /// The hard timeout, ms.
    pub hard_timeout_ms: Option<u64>,
}

impl FailSafeSettings {
    /// Any of them set.
    pub fn any(&self) -> bool {
        self.fail_safe_s.is_some() || self.soft_timeout_ms.is_some() || self.hard_timeout_ms.is_some()
    }

    /// `fail-safe 60 s, hard 2000 ms` (or `fail-safe off`).
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.fail_safe_s {
            Some(s) => format!("fail-safe {s} s"),
            None => "fail-safe off".to_owned(),
        }];
        if let Some(ms) = self.soft_timeout_ms {
            parts.push(format!("soft {ms} ms"));
        }
        if let Some(ms) = self.hard_timeout_ms {
            parts.push(format!("hard {ms} ms"));
        }
        parts.join(", ")
    }
}

/// What a row's own settings say (`fail-safe=off`, `fail-safe=30s`,
/// `soft-timeout=200ms`, `hard-timeout=off`): `None` leaves the tool's
/// flag, `Some(None)` turns it off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowSettings {
    /// `fail-safe=`, s.
    pub fail_safe_s: Option<Option<u64>>,
    /// `soft-timeout=`, ms.
    pub soft_timeout_ms: Option<Option<u64>>,
    /// `hard-timeout=`, ms.
    pub hard_timeout_ms: Option<Option<u64>>,
}

impl RowSettings {
    /// Reads `NAME=VALUE` into these settings when NAME is one of them:
    /// `Ok(false)` when it is not a setting (a fault, then).
    fn parse_into(&mut self, s: &str) -> Result<bool, String> {
        let Some((name, value)) = s.split_once('=') else {
            return Ok(false);
        };
        let slot = match name {
            "fail-safe" => &mut self.fail_safe_s,
            "soft-timeout" => &mut self.soft_timeout_ms,
            "hard-timeout" => &mut self.hard_timeout_ms,
            _ => return Ok(false),
        };
        let bad = |why: &str| format!("setting {s:?}: {why}");
        let parsed = if value == "off" {
            None
        } else {
            let d = parse_duration(value)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad("expected off or a duration above 0, like 60s or 200ms"))?;
            Some(if name == "fail-safe" {
                if d.subsec_nanos() != 0 {
                    return Err(bad("the service takes whole seconds (--fail-safe-s)"));
                }
                d.as_secs()
            } else {
                millis(d)
            })
        };
        *slot = Some(parsed);
        Ok(true)
    }
}

/// One row of a run: a strategy on a cache, with faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSpec {
    /// The invalidation strategy (a registry name).
    pub strategy: String,
    /// The cache.
    pub cache: CacheSpec,
    /// The faults, in the order given.
    pub faults: Vec<Fault>,
    /// The row's own fail-safe settings.
    pub settings: RowSettings,
    /// The row as written.
    pub label: String,
}

impl RowSpec {
    /// Parses `STRATEGY@CACHE[@FAULT,…]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.split('@');
        let strategy = parts.next().unwrap_or_default();
        let cache = parts
            .next()
            .ok_or_else(|| format!("row {s:?}: expected STRATEGY@CACHE[@FAULT,…]"))?;
        let faults = parts.next();
        if parts.next().is_some() {
            return Err(format!(
                "row {s:?}: expected STRATEGY@CACHE[@FAULT,…] (at most two '@')"
            ));
        }
        if !cache_core::strategy::NAMES.contains(&strategy) {
            return Err(format!(
                "row {s:?}: unknown strategy {strategy:?}; known: {}",
                cache_core::strategy::NAMES.join(", ")
            ));
        }
        let cache = CacheSpec::parse(cache).map_err(|e| format!("row {s:?}: {e}"))?;
        let mut parsed = Vec::new();
        let mut settings = RowSettings::default();
        for f in faults.into_iter().flat_map(|f| f.split(',')).filter(|f| !f.is_empty()) {
            if settings.parse_into(f).map_err(|e| format!("row {s:?}: {e}"))? {
                continue;
            }
            let fault = Fault::parse(f).map_err(|e| format!("row {s:?}: {e}"))?;
            if let Some(why) = fault.unusable_with(&cache) {
                return Err(format!("row {s:?}: fault {f:?} {why}"));
            }
            parsed.push(fault);
        }
        Ok(RowSpec {
            strategy: strategy.to_owned(),
            cache,
            faults: parsed,
            settings,
            label: s.to_owned(),
        })
    }

    /// The row injects a database fault (`db-outage`, `db-slow`).
    pub fn has_db_fault(&self) -> bool {
        self.faults.iter().any(|f| f.kind.is_db())
    }

    /// The fail-safe settings of this row's services: the row's own, else
    /// `defaults` (the tool's flags) in a row with a database fault, else
    /// off. The error names what the service would refuse.
    pub fn fail_safe(&self, defaults: &FailSafeSettings) -> Result<FailSafeSettings, String> {
        let base = if self.has_db_fault() {
            *defaults
        } else {
            FailSafeSettings::default()
        };
        let s = FailSafeSettings {
            fail_safe_s: self.settings.fail_safe_s.unwrap_or(base.fail_safe_s),
            soft_timeout_ms: self.settings.soft_timeout_ms.unwrap_or(base.soft_timeout_ms),
            hard_timeout_ms: self.settings.hard_timeout_ms.unwrap_or(base.hard_timeout_ms),
        };
        if s.soft_timeout_ms.is_some() && s.fail_safe_s.is_none() {
            return Err(format!(
                "row {:?}: a soft timeout needs fail-safe on (past it a read is answered by its fail-safe feed)",
                self.label
            ));
        }
        if let (Some(soft), Some(hard)) = (s.soft_timeout_ms, s.hard_timeout_ms) {
            if soft >= hard {
                return Err(format!(
                    "row {:?}: the soft timeout ({soft} ms) must be below the hard timeout ({hard} ms)",
                    self.label
                ));
            }
        }
        Ok(s)
    }

    /// `maxmemory` of this row's Redis, if a fault sets it.
    pub fn maxmemory(&self) -> Option<u64> {
        self.faults.iter().find_map(|f| match f.kind {
            FaultKind::MaxMemory { bytes } => Some(bytes),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_caches_and_faults_parse_or_say_why() {
        let row =
            RowSpec::parse("stamped@two-tier/backplane,trust=300:locmem:64+redis@pubsub-kill:5,stop=500ms").unwrap();
        assert_eq!(row.strategy, "stamped");
        assert!(row.cache.has_backplane() && row.cache.uses_redis() && !row.cache.uses_memcached());
        assert_eq!(
            row.cache.url(Some("redis://127.0.0.1:7/"), None),
            "two-tier/backplane,trust=300:locmem:64+redis://127.0.0.1:7/"
        );
        assert_eq!(
            row.cache.sim_spec(Some("redis://127.0.0.1:7/"), None, 1500).as_deref(),
            Some("two-tier/backplane=1500,trust=300:locmem:64+redis://127.0.0.1:7/")
        );
        assert_eq!(
            row.faults,
            [
                Fault {
                    kind: FaultKind::PubsubKill,
                    at: Some(Duration::from_secs(5))
                },
                Fault {
                    kind: FaultKind::Stop { for_ms: 500 },
                    at: None
                }
            ]
        );
        assert_eq!(
            RowSpec::parse("versioned@redis@maxmemory=4mb").unwrap().maxmemory(),
            Some(4 << 20)
        );
        assert_eq!(
            CacheSpec::parse("memcache")
                .unwrap()
                .url(None, Some("memcache://127.0.0.1:9")),
            "memcache://127.0.0.1:9"
        );
        assert_eq!(CacheSpec::parse("none").unwrap().sim_spec(None, None, 0), None);
        let tracked = CacheSpec::parse("two-tier/tracking:locmem:64+redis").unwrap();
        assert!(tracked.uses_redis() && !tracked.has_backplane());
        assert_eq!(
            tracked.sim_spec(Some("redis://127.0.0.1:7/"), None, 1500).as_deref(),
            Some("two-tier/tracking:locmem:64+redis://127.0.0.1:7/")
        );
        for (bad, says) in [
            ("stamped", "expected STRATEGY@CACHE"),
            ("lru@redis", "unknown strategy \"lru\""),
            ("stamped@mysql", "cache \"mysql\""),
            (
                "stamped@two-tier/backplane:locmem+memcache",
                "backplane needs the redis L2",
            ),
            (
                "stamped@two-tier/tracking:locmem+memcache",
                "tracking needs the redis L2",
            ),
            ("stamped@redis@explode", "unknown fault"),
            ("stamped@redis@stop=fast", "like 2s"),
            ("stamped@locmem@kill", "needs a cache server"),
            ("stamped@redis@pubsub-kill", "needs two-tier/backplane"),
            ("stamped@memcache@maxmemory", "needs redis"),
            ("stamped@redis@maxmemory=10kb", "at least 1mb"),
            ("stamped@redis@kill@stop", "at most two"),
            ("stamped@redis@db-slow", "needs a latency"),
            ("stamped@redis@db-slow=fast", "latency is milliseconds"),
            ("stamped@redis@db-slow=800/forever", "after '/'"),
            ("stamped@redis@db-outage=0s", "more than 0"),
            ("stamped@redis@db-outage,fail-safe=1500ms", "whole seconds"),
            (
                "stamped@redis@db-outage,hard-timeout=soon",
                "expected off or a duration",
            ),
        ] {
            let e = RowSpec::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn database_faults_and_fail_safe_settings_parse_and_resolve() {
        let row = RowSpec::parse("stamped@redis@db-outage:12,fail-safe=off").unwrap();
        assert_eq!(
            row.faults,
            [Fault {
                kind: FaultKind::DbOutage { for_ms: 10_000 },
                at: Some(Duration::from_secs(12))
            }]
        );
        assert!(row.has_db_fault());
        let defaults = FailSafeSettings {
            fail_safe_s: Some(60),
            soft_timeout_ms: None,
            hard_timeout_ms: Some(2000),
        };
        assert_eq!(
            row.fail_safe(&defaults).unwrap(),
            FailSafeSettings {
                fail_safe_s: None,
                soft_timeout_ms: None,
                hard_timeout_ms: Some(2000)
            }
        );
        let slow = RowSpec::parse("stamped@memcache@db-slow=800ms/4s,soft-timeout=100ms").unwrap();
        assert_eq!(
            slow.faults[0].kind,
            FaultKind::DbSlow {
                latency_ms: 800,
                for_ms: 4000
            }
        );
        assert_eq!(slow.fail_safe(&defaults).unwrap().soft_timeout_ms, Some(100));
        assert_eq!(
            RowSpec::parse("stamped@redis@db-slow=300").unwrap().faults[0].kind,
            FaultKind::DbSlow {
                latency_ms: 300,
                for_ms: 10_000
            }
        );
        // The tool's defaults only reach rows with a database fault.
        let plain = RowSpec::parse("stamped@redis").unwrap();
        assert!(!plain.fail_safe(&defaults).unwrap().any());
        let own = RowSpec::parse("stamped@redis@fail-safe=30s").unwrap();
        assert_eq!(own.fail_safe(&defaults).unwrap().fail_safe_s, Some(30));
        // What the service would refuse is refused here, naming the row.
        let e = RowSpec::parse("stamped@redis@db-outage,fail-safe=off,soft-timeout=50ms")
            .unwrap()
            .fail_safe(&defaults)
            .unwrap_err();
        assert!(e.contains("needs fail-safe on"), "{e}");
        let e = RowSpec::parse("stamped@redis@db-outage,soft-timeout=3s")
            .unwrap()
            .fail_safe(&defaults)
            .unwrap_err();
        assert!(e.contains("below the hard timeout"), "{e}");
    }
}
