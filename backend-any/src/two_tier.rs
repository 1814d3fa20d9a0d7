//! `two-tier[/<option>,…]:<l1>+<l2>` URLs: an in-process L1 per process in
//! front of a shared L2 ([`cache_core::tier::TwoTier`]), optionally kept
//! coherent by Redis client tracking or a Redis pub/sub backplane.
//!
//! - `<l1>`: `locmem` or `locmem:<MiB>`, this process's copy.
//! - `<l2>`: any other URL this crate takes (`redis://…`,
//!   `redis+cluster://…`, `memcache://…`, or `locmem` for a test).
//! - Options, comma-separated:
//!   - `tracking`: Redis client tracking on the L2's servers (one RESP3
//!     connection per server or cluster master,
//!     [`RedisTracker`](backend_redis::RedisTracker)): the server tells
//!     this process when a generation it read changed, so an L1 hit makes
//!     no round trip. Only with a Redis L2 (Redis 6 or later).
//!   - `backplane`: subscribe to generation bumps over Redis pub/sub on the
//!     L2's server (the first node of a cluster), so an L1 hit makes no
//!     round trip. Only with a Redis L2: Memcached has no publish/subscribe.
//!   - `channel=<name>`: the pub/sub channel (default
//!     [`DEFAULT_CHANNEL`]); every process of one application uses the same.
//!   - `trust=<s>`: how long a generation the backplane vouches for is
//!     trusted without a notice
//!     ([`TwoTierBuilder::trust_for`](cache_core::tier::TwoTierBuilder::trust_for),
//!     default an hour).
//!
//! The grammar is [`backend_any::spec`], shared with the simulator's
//! `--backend`, whose `backplane=<µs>` and `tracking=<µs>` are modelled
//! delivery latencies: a value given here is refused with that
//! explanation.

use std::sync::Arc;
use std::time::Duration;

use crate::spec::{SpecError, TwoTierSpec};
use backend_redis::{RedisBackplane, RedisTracker};
use cache_core::tier::TwoTier;
use cache_core::Backend;

use crate::{connect, redact, scrub, Error};

/// The backplane's pub/sub channel when the URL names none.
pub const DEFAULT_CHANNEL: &str = "range-cache:generations";

/// What a `two-tier` URL asks for.
struct Spec<'a> {
    l1: &'a str,
    l2: &'a str,
    backplane: bool,
    tracking: bool,
    channel: Option<&'a str>,
    trust: Option<Duration>,
}

/// Parses `url` with the shared grammar ([`TwoTierSpec`]), then what an
/// application can honour: a real backplane on a Redis L2.
fn parse(url: &str) -> Result<Spec<'_>, Error> {
    let config = |message: String| Error::Config {
        url: redact(url),
        message,
    };
    let spec = TwoTierSpec::parse(url).map_err(|e| config(e.to_string()))?;
    let ours = |message: &str| config(SpecError::new(message).to_string());
    let backplane = match spec.backplane() {
        None => false,
        Some(None) => true,
        Some(Some(_)) => {
            return Err(ours(
                "backplane=<µs> is the simulator's modelled delivery latency; here the backplane is a real \
                 Redis channel with its own latency: write `backplane`",
            ))
        }
    };
    if backplane && !spec.l2.starts_with("redis") {
        return Err(ours(
            "backplane needs a Redis L2 (Memcached has no publish/subscribe: use two-tier without backplane)",
        ));
    }
    let tracking = match spec.tracking() {
        None => false,
        Some(None) => true,
        Some(Some(_)) => {
            return Err(ours(
                "tracking=<µs> is the simulator's modelled delivery latency; here the server delivers the \
                 invalidations: write `tracking`",
            ))
        }
    };
    if tracking && !spec.l2.starts_with("redis") {
        return Err(ours(
            "tracking needs a Redis L2 (client tracking is a Redis feature; with Memcached use a Redis \
             backplane or no option)",
        ));
    }
    Ok(Spec {
        l1: spec.l1,
        l2: spec.l2,
        backplane,
        tracking,
        channel: spec.channel(),
        trust: spec.trust().map(Duration::from_secs),
    })
}

/// The single-node URL the backplane subscribes on: the L2's own, or the
/// first node of a cluster's (a `PUBLISH` reaches every node's subscribers).
fn backplane_url(l2: &str) -> String {
    let Some((scheme, rest)) = l2.split_once("://") else {
        return l2.to_owned();
    };
    let Some(node_scheme) = scheme.strip_suffix("+cluster") else {
        return l2.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let first = hosts.split(',').next().unwrap_or_default();
    format!("{node_scheme}://{userinfo}{first}")
}

/// Connects a `two-tier` URL (`rest` is what follows `two-tier`).
pub(crate) async fn connect_two_tier(url: &str) -> Result<Arc<dyn Backend>, Error> {
    let spec = parse(url)?;
    let l1 = Box::pin(connect(spec.l1)).await?;
    let l2 = Box::pin(connect(spec.l2)).await?;
    let mut builder = TwoTier::builder(l1, l2);
    if spec.backplane {
        let bp_url = backplane_url(spec.l2);
        let bus = RedisBackplane::connect(&bp_url, spec.channel.unwrap_or(DEFAULT_CHANNEL))
            .await
            .map_err(|e| Error::Connect {
                url: redact(url),
                message: format!("backplane: {}", scrub(&e.to_string(), &bp_url)),
            })?;
        builder = builder.backplane(Arc::new(bus));
    }
    if spec.tracking {
        // The L2's own URL: the tracker finds a cluster's masters itself.
        let tracker = RedisTracker::connect(spec.l2).await.map_err(|e| Error::Connect {
            url: redact(url),
            message: format!("tracking: {}", scrub(&e.to_string(), spec.l2)),
        })?;
        builder = builder.tracking(Arc::new(tracker));
    }
    if let Some(t) = spec.trust {
        builder = builder.trust_for(t);
    }
    let tiers = builder.build().map_err(|e| Error::Config {
        url: redact(url),
        message: scrub(&e.to_string(), spec.l2),
    })?;
    Ok(Arc::new(tiers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let s = parse("two-tier/backplane,channel=feeds,trust=300:locmem:64+redis+cluster://a:1,b:2").unwrap();
        assert_eq!(
            (s.l1, s.l2, s.backplane),
            ("locmem:64", "redis+cluster://a:1,b:2", true)
        );
        assert_eq!((s.channel, s.trust), (Some("feeds"), Some(Duration::from_secs(300))));
        let s = parse("two-tier:locmem+memcache://h:1").unwrap();
        assert!(!s.backplane && s.channel.is_none());
        let s = parse("two-tier/tracking:locmem+redis+cluster://a:1,b:2").unwrap();
        assert!(s.tracking && !s.backplane);
        for (url, why) in [
            ("two-tier", "missing ':'"),
            ("two-tier:locmem", "missing '+'"),
            ("two-tier:redis://h:1+locmem", "L1 must be locmem"),
            ("two-tier:locmem+two-tier:locmem+locmem", "cannot be two-tier"),
            ("two-tier/oops:locmem+redis://h:1", "unknown option"),
            ("two-tier/backplane,trust=0:locmem+redis://h:1", "at least 1"),
            ("two-tier/trust=5:locmem+redis://h:1", "only apply with a backplane"),
            (
                "two-tier/backplane:locmem+memcache://h:1",
                "Memcached has no publish/subscribe",
            ),
            ("two-tier/backplane:locmem+locmem", "needs a Redis L2"),
            ("two-tier/tracking:locmem+memcache://h:1", "tracking needs a Redis L2"),
            (
                "two-tier/tracking=100:locmem+redis://h:1",
                "the simulator's modelled delivery latency",
            ),
            (
                "two-tier/backplane=2000:locmem+redis://h:1",
                "the simulator's modelled delivery latency",
            ),
        ] {
            let e = parse(url).err().unwrap_or_else(|| panic!("{url} parsed")).to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn the_backplane_subscribes_on_one_node() {
        assert_eq!(backplane_url("redis://u:p@h:1/2"), "redis://u:p@h:1/2");
        assert_eq!(backplane_url("redis+cluster://u:p@a:1,b:2"), "redis://u:p@a:1");
        assert_eq!(backplane_url("rediss+cluster://a:1,b:2/?x=y"), "rediss://a:1");
    }
}
