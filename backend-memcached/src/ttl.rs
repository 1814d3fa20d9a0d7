//! TTLs on the wire: Memcached's whole seconds, its 30-day switch to
//! absolute times, and its signed 32-bit clock.

use std::time::Duration;

use cache_core::{Error, Result, Ttl};

use crate::BACKEND_NAME;

/// How late an entry may disappear after its TTL. TTLs are sent as
/// `ceil(ttl) + 1` whole seconds, and memcached's once-a-second clock makes
/// an item sent with `T<n>` live between `n - 1` and `n` seconds, so an entry
/// lives at least `ttl` and less than `ttl + 2 s`.
pub const TTL_GRANULARITY: Duration = Duration::from_secs(2);

/// The `T` flag's number for `ttl`: seconds up to 30 days, else an
/// absolute Unix time (`None`: no `T` flag, the item never expires).
///
/// Memcached keeps time in whole seconds on a clock that ticks once a
/// second, so an item sent with `T<n>` lives between `n - 1` and `n`
/// seconds (measured here: `T1` lived 0.02–0.87 s, `T2` 1.13–1.81 s). We
/// send `ceil(ttl) + 1`: the entry lives at least `ttl` and at most
/// `ttl + 2 s`, hence [`TTL_GRANULARITY`] = 2 s. (Memcached's timer re-arms
/// itself, so its phase drifts; when it crosses a second boundary one tick
/// advances the clock by two, and an item stored just before can expire up
/// to a second early. That is rare and only costs a cache miss.)
///
/// TTLs over 30 days must be sent as absolute Unix times, which the
/// server reads as a signed 32-bit number: a TTL reaching past
/// [`MAX_EXPIRY_UNIX`] (2038-01-19) is clamped to it, so `Duration::MAX` means "as long as
/// memcached can keep it", never a wrapped short TTL. Only once the clock
/// itself is within 30 days of 2038-01-19 is a long TTL refused with
/// [`Error::InvalidTtl`].
pub(crate) fn wire_ttl(ttl: Ttl, key: &str) -> Result<Option<u64>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    wire_ttl_at(ttl, now, key)
}

/// Longest relative TTL memcached accepts; longer ones are absolute times.
const MAX_RELATIVE_SECS: u64 = 30 * 86_400;

/// The latest expiry memcached accepts: `i32::MAX` seconds after the Unix
/// epoch (2038-01-19T03:14:07Z). Measured on memcached 1.6.18: `T2147483647`
/// is stored, `T2147483648` (and anything up to `u32::MAX`) is read as
/// already expired.
pub const MAX_EXPIRY_UNIX: u64 = i32::MAX as u64;

/// [`wire_ttl`] at Unix time `now` (seconds).
fn wire_ttl_at(ttl: Ttl, now: u64, key: &str) -> Result<Option<u64>> {
    let Some(ttl) = ttl else { return Ok(None) };
    let whole = ttl.as_secs().saturating_add(u64::from(ttl.subsec_nanos() > 0));
    let secs = whole.saturating_add(1);
    if secs <= MAX_RELATIVE_SECS {
        // Cannot fail: at most 30 days.
        return Ok(Some(secs));
    }
    let at = now.saturating_add(secs).min(MAX_EXPIRY_UNIX);
    if at <= now.saturating_add(MAX_RELATIVE_SECS) {
        return Err(Error::InvalidTtl {
            backend: BACKEND_NAME.to_owned(),
            key: key.to_owned(),
            ttl,
            reason: "the expiry would be past memcached's signed 32-bit clock (2038-01-19)",
        });
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_rounded_up_plus_one_second() {
        let w = |ttl| wire_ttl_at(ttl, 1_760_000_000, "k").unwrap();
        assert_eq!(w(None), None);
        assert_eq!(w(Some(Duration::from_millis(1))), Some(2));
        assert_eq!(w(Some(Duration::from_secs(1))), Some(2));
        assert_eq!(w(Some(Duration::from_millis(1500))), Some(3));
        assert_eq!(w(Some(Duration::from_secs(30 * 86_400 - 1))), Some(30 * 86_400));
        let at = |secs: u64| Some(secs);
        assert_eq!(
            w(Some(Duration::from_secs(30 * 86_400))),
            at(1_760_000_000 + 30 * 86_400 + 1)
        );
    }

    #[test]
    fn huge_ttls_clamp_to_2038_and_never_wrap() {
        let now = 1_760_000_000;
        for ttl in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(u64::MAX - 1),
            Duration::from_secs(i64::MAX as u64),
            Duration::from_secs(100 * 365 * 86_400),
        ] {
            let wire = wire_ttl_at(Some(ttl), now, "k").unwrap();
            assert_eq!(wire, Some(MAX_EXPIRY_UNIX), "{ttl:?}");
        }
        // Near 2038 nothing long can be expressed: an error, not a short TTL.
        let e = wire_ttl_at(Some(Duration::MAX), MAX_EXPIRY_UNIX - 10, "k").unwrap_err();
        assert!(matches!(e, Error::InvalidTtl { .. }), "{e}");
        assert!(wire_ttl_at(Some(Duration::from_secs(5)), MAX_EXPIRY_UNIX, "k").is_ok());
    }
}
