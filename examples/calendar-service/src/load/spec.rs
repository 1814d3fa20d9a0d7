//! What a run is made of: rows (`STRATEGY@CACHE[@FAULT,…]`), the cache
//! each row uses, and the faults injected into it. Parsed from `--row`
//! values; every error names the value and what is wrong with it.

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
        }
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
    /// `stop=500ms:10`, `pubsub-kill`, `service-restart`, `maxmemory=2mb`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "fault {s:?}: {why}; expected kill, stop[=<duration>], pubsub-kill, service-restart or \
                 maxmemory[=<size, at least 1mb>], each optionally followed by :<seconds after the start>"
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
                FaultKind::Stop {
                    for_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                }
            }
            ("pubsub-kill", None) => FaultKind::PubsubKill,
            ("service-restart", None) => FaultKind::ServiceRestart,
            ("maxmemory", arg) => FaultKind::MaxMemory {
                bytes: match arg {
                    Some(a) => parse_bytes(a).ok_or_else(|| bad("the size is like 2mb (at least 1mb)"))?,
                    None => DEFAULT_MAXMEMORY,
                },
            },
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

/// One row of a run: a strategy on a cache, with faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSpec {
    /// The invalidation strategy (a registry name).
    pub strategy: String,
    /// The cache.
    pub cache: CacheSpec,
    /// The faults, in the order given.
    pub faults: Vec<Fault>,
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
        for f in faults.into_iter().flat_map(|f| f.split(',')).filter(|f| !f.is_empty()) {
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
            label: s.to_owned(),
        })
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
        ] {
            let e = RowSpec::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
