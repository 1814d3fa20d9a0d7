//! The `two-tier[/<option>,…]:<l1>+<l2>` grammar: one parser for every
//! place that names a [`TwoTier`](cache_core::tier::TwoTier) in configuration
//! (`backend-any` URLs, the simulator's `--backend`).
//!
//! - `<l1>`: `locmem` or `locmem:<MiB>`, each process's own copy;
//! - `<l2>`: any other backend spec (not `two-tier`), shared by the
//!   processes;
//! - options, comma-separated, each `name` or `name=value`, each at most
//!   once: see [`OPTIONS`].
//!
//! The grammar checks the shape of everything and what holds on every
//! side (the L1 is in-process, `channel` and `trust` need a backplane,
//! `backplane` and `tracking` exclude each other); each side then takes
//! the options it uses and refuses, saying why, a value it cannot honour.
//! `backplane` shows the split: an application's backplane is a real Redis
//! channel (`backplane`, no value), the simulator's a modelled delivery
//! latency (`backplane=<µs>`). `tracking` likewise: Redis client tracking
//! for an application, a modelled delivery latency per invalidation for
//! the simulator (which has a default, so `tracking` alone works there
//! too).
//!
//! ```
//! use backend_any::spec::{TierOption, TwoTierSpec};
//! let spec = TwoTierSpec::parse("two-tier/backplane,trust=300:locmem:64+redis://10.0.0.5:6379/0").unwrap();
//! assert_eq!((spec.l1, spec.l2), ("locmem:64", "redis://10.0.0.5:6379/0"));
//! assert_eq!(spec.options, [TierOption::Backplane(None), TierOption::Trust(300)]);
//! let spec = TwoTierSpec::parse("two-tier/tracking:locmem+redis://10.0.0.5:6379/0").unwrap();
//! assert_eq!(spec.tracking(), Some(None));
//! let err = TwoTierSpec::parse("two-tier/backplane,gossip:locmem+locmem").unwrap_err();
//! assert!(err.to_string().contains("unknown option \"gossip\""));
//! ```

/// How an option's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueForm {
    /// No value, or `=<µs>` (whole microseconds).
    OptionalMicros,
    /// `=<s>`, whole seconds, at least 1.
    Seconds,
    /// `=<name>`, non-empty.
    Name,
}

/// One option of the grammar: its name, how its value is written, and
/// what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OptionSyntax {
    /// The option's name.
    pub name: &'static str,
    /// How its value is written.
    pub value: ValueForm,
    /// What it asks for.
    pub meaning: &'static str,
}

/// Every option the grammar knows. A new option is a row here and a
/// variant of [`TierOption`] (and whatever each side does with it).
pub const OPTIONS: [OptionSyntax; 4] = [
    OptionSyntax {
        name: "backplane",
        value: ValueForm::OptionalMicros,
        meaning: "processes tell each other about generation bumps, so an L1 hit makes no round trip: \
                  `backplane` is Redis pub/sub on the L2's server (applications); `backplane=<µs>` a \
                  modelled delivery latency (the simulator)",
    },
    OptionSyntax {
        name: "tracking",
        value: ValueForm::OptionalMicros,
        meaning: "the server tells each process when a generation it read changed (Redis CLIENT TRACKING), \
                  so an L1 hit makes no round trip: `tracking` is Redis client tracking on the L2 \
                  (applications; the simulator's default latency); `tracking=<µs>` a modelled delivery \
                  latency per invalidation (the simulator)",
    },
    OptionSyntax {
        name: "channel",
        value: ValueForm::Name,
        meaning: "the backplane's pub/sub channel (applications; the simulator ignores it)",
    },
    OptionSyntax {
        name: "trust",
        value: ValueForm::Seconds,
        meaning: "how long a known generation is trusted without a notice (needs a backplane)",
    },
];

/// The grammar in one line, for error messages.
pub const SYNTAX: &str = "two-tier[/backplane[=<µs>][,channel=<name>][,trust=<s>] | /tracking[=<µs>]]:\
                          <locmem|locmem:MiB>+<L2 spec other than two-tier>";

/// One option as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierOption<'a> {
    /// `backplane` (`None`) or `backplane=<µs>`.
    Backplane(Option<u64>),
    /// `tracking` (`None`) or `tracking=<µs>`.
    Tracking(Option<u64>),
    /// `channel=<name>`.
    Channel(&'a str),
    /// `trust=<s>`.
    Trust(u64),
}

impl TierOption<'_> {
    /// The option's name.
    pub fn name(&self) -> &'static str {
        match self {
            TierOption::Backplane(_) => "backplane",
            TierOption::Tracking(_) => "tracking",
            TierOption::Channel(_) => "channel",
            TierOption::Trust(_) => "trust",
        }
    }
}

/// A parsed `two-tier` spec, borrowing from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TwoTierSpec<'a> {
    /// `locmem` or `locmem:<MiB>` (the number is the caller's to check).
    pub l1: &'a str,
    /// The shared tier's spec, as given.
    pub l2: &'a str,
    /// The options, in the order given.
    pub options: Vec<TierOption<'a>>,
}

/// Why a `two-tier` spec does not parse; its message ends with [`SYNTAX`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}; expected {SYNTAX}")]
pub struct SpecError {
    message: String,
}

impl SpecError {
    /// An error saying `message` about a spec, for the sides' own checks.
    pub fn new(message: impl Into<String>) -> Self {
        SpecError {
            message: message.into(),
        }
    }
}

impl<'a> TwoTierSpec<'a> {
    /// True when `spec` is meant as a two-tier spec (starts with
    /// `two-tier`), whether or not it parses.
    pub fn is_two_tier(spec: &str) -> bool {
        spec.starts_with("two-tier")
    }

    /// Parses `spec` (`two-tier…`).
    pub fn parse(spec: &'a str) -> Result<Self, SpecError> {
        let err = |m: String| Err(SpecError::new(m));
        let Some(rest) = spec.strip_prefix("two-tier") else {
            return err("not a two-tier spec".into());
        };
        let (options, tiers) = match rest.strip_prefix('/') {
            Some(r) => match r.split_once(':') {
                Some((o, t)) => (Some(o), t),
                None => return err("missing ':' after the options".into()),
            },
            None => match rest.strip_prefix(':') {
                Some(t) => (None, t),
                None => return err("missing ':' after two-tier".into()),
            },
        };
        let Some((l1, l2)) = tiers.split_once('+') else {
            return err("missing '+' between L1 and L2".into());
        };
        let l1_ok = l1 == "locmem" || l1.strip_prefix("locmem:").is_some_and(|n| !n.is_empty());
        if !l1_ok {
            return err(format!("L1 must be locmem or locmem:<MiB>, not {l1:?}"));
        }
        if Self::is_two_tier(l2) {
            return err("L2 cannot be two-tier".into());
        }
        if l2.is_empty() {
            return err("missing L2 after '+'".into());
        }
        let mut parsed: Vec<TierOption<'a>> = Vec::new();
        for option in options.into_iter().flat_map(|o| o.split(',')) {
            let (name, value) = match option.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (option, None),
            };
            let Some(syntax) = OPTIONS.iter().find(|o| o.name == name) else {
                let known: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
                return err(format!("unknown option {name:?} (known: {})", known.join(", ")));
            };
            let whole = |v: &str| v.parse::<u64>().ok();
            let micros = |us: Option<u64>| match name {
                "tracking" => TierOption::Tracking(us),
                _ => TierOption::Backplane(us),
            };
            let opt = match (syntax.value, value) {
                (ValueForm::OptionalMicros, None) => micros(None),
                (ValueForm::OptionalMicros, Some(v)) => match whole(v) {
                    Some(us) => micros(Some(us)),
                    None => return err(format!("{name}={v}: expected whole microseconds")),
                },
                (ValueForm::Seconds, Some(v)) => match whole(v).filter(|s| *s > 0) {
                    Some(s) => TierOption::Trust(s),
                    None => return err(format!("{name}={v}: expected whole seconds, at least 1")),
                },
                (ValueForm::Name, Some(v)) if !v.is_empty() => TierOption::Channel(v),
                (_, _) => return err(format!("option {name} needs a value ({name}=…)")),
            };
            if parsed.iter().any(|p| p.name() == name) {
                return err(format!("option {name} given twice"));
            }
            parsed.push(opt);
        }
        let spec = TwoTierSpec {
            l1,
            l2,
            options: parsed,
        };
        if spec.backplane().is_some() && spec.tracking().is_some() {
            return err("backplane or tracking, not both: tracking alone keeps the tiers coherent".into());
        }
        if spec.backplane().is_none() && (spec.channel().is_some() || spec.trust().is_some()) {
            return err("channel and trust only apply with a backplane".into());
        }
        Ok(spec)
    }

    /// `Some(None)` for `backplane`, `Some(Some(µs))` for
    /// `backplane=<µs>`, `None` without a backplane.
    pub fn backplane(&self) -> Option<Option<u64>> {
        self.options.iter().find_map(|o| match o {
            TierOption::Backplane(us) => Some(*us),
            _ => None,
        })
    }

    /// `Some(None)` for `tracking`, `Some(Some(µs))` for `tracking=<µs>`,
    /// `None` without tracking.
    pub fn tracking(&self) -> Option<Option<u64>> {
        self.options.iter().find_map(|o| match o {
            TierOption::Tracking(us) => Some(*us),
            _ => None,
        })
    }

    /// `channel=<name>`.
    pub fn channel(&self) -> Option<&'a str> {
        self.options.iter().find_map(|o| match o {
            TierOption::Channel(c) => Some(*c),
            _ => None,
        })
    }

    /// `trust=<s>`.
    pub fn trust(&self) -> Option<u64> {
        self.options.iter().find_map(|o| match o {
            TierOption::Trust(s) => Some(*s),
            _ => None,
        })
    }

    /// The L1's capacity in MiB, when given (`locmem:<MiB>`); `Err` when
    /// it is not a whole number.
    pub fn l1_mib(&self) -> Result<Option<u64>, SpecError> {
        match self.l1.strip_prefix("locmem:") {
            None => Ok(None),
            Some(n) => n
                .parse()
                .map(Some)
                .map_err(|_| SpecError::new(format!("L1 {:?}: expected locmem:<MiB>", self.l1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_tiers_and_options() {
        let s =
            TwoTierSpec::parse("two-tier/backplane,channel=feeds,trust=300:locmem:64+redis+cluster://a:1,b:2").unwrap();
        assert_eq!((s.l1, s.l2), ("locmem:64", "redis+cluster://a:1,b:2"));
        assert_eq!(
            (s.backplane(), s.channel(), s.trust(), s.l1_mib()),
            (Some(None), Some("feeds"), Some(300), Ok(Some(64)))
        );
        let s = TwoTierSpec::parse("two-tier/trust=30,backplane=2000:locmem+locmem").unwrap();
        assert_eq!(s.backplane(), Some(Some(2000)));
        let s = TwoTierSpec::parse("two-tier:locmem+memcache://h:1").unwrap();
        assert_eq!((s.options.len(), s.l1_mib()), (0, Ok(None)));
        let s = TwoTierSpec::parse("two-tier/tracking=150:locmem+locmem").unwrap();
        assert_eq!((s.tracking(), s.backplane()), (Some(Some(150)), None));
        let s = TwoTierSpec::parse("two-tier/tracking:locmem+redis+cluster://a:1").unwrap();
        assert_eq!(s.tracking(), Some(None));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, why) in [
            ("two-tier", "missing ':'"),
            ("two-tier/backplane", "missing ':' after the options"),
            ("two-tier:locmem", "missing '+'"),
            ("two-tier:redis://h:1+locmem", "L1 must be locmem"),
            ("two-tier:locmem:+locmem", "L1 must be locmem"),
            ("two-tier:locmem+two-tier:locmem+locmem", "cannot be two-tier"),
            ("two-tier:locmem+", "missing L2"),
            (
                "two-tier/oops:locmem+locmem",
                "unknown option \"oops\" (known: backplane, tracking, channel, trust)",
            ),
            ("two-tier/backplane=x:locmem+locmem", "whole microseconds"),
            ("two-tier/backplane,trust=0:locmem+locmem", "at least 1"),
            ("two-tier/backplane,trust=-3:locmem+locmem", "at least 1"),
            ("two-tier/backplane,trust:locmem+locmem", "trust needs a value"),
            ("two-tier/backplane,channel=:locmem+locmem", "channel needs a value"),
            ("two-tier/backplane=1,backplane=2:locmem+locmem", "given twice"),
            ("two-tier/trust=5:locmem+locmem", "only apply with a backplane"),
            ("two-tier/tracking,trust=5:locmem+locmem", "only apply with a backplane"),
            ("two-tier/tracking=x:locmem+locmem", "whole microseconds"),
            ("two-tier/tracking,tracking=3:locmem+locmem", "given twice"),
            ("two-tier/backplane=1,tracking=1:locmem+locmem", "not both"),
        ] {
            let e = TwoTierSpec::parse(spec).unwrap_err().to_string();
            assert!(e.contains(why) && e.ends_with(SYNTAX), "{spec}: {e}");
        }
    }
}
