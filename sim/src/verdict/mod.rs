//! The verdict: which strategy to use on which backend, and why not each
//! of the others.
//!
//! A cell (strategy × backend) is recommended only if
//!
//! 1. it is correct on the user's traffic: 0 stale reads (0 at-risk reads
//!    for an access log, which has no database to judge by) and no backend
//!    errors (whose reads fell back to the database and prove nothing);
//! 2. it passes every built-in hazard scenario that applies to the run
//!    ([`HAZARDS`]): some apply to every app (the incident, the stale-set
//!    race, a lost version key, a moved item), the others when the run
//!    shows the trigger: several app processes, a server that evicted
//!    keys during the run, zones that make keys vary (daylight saving,
//!    named zones, several offsets), calendars shared between viewers.
//!
//! Among the cells that pass, the fewest backend round trips per read
//! wins, ties to the higher hit rate.
//!
//! **How "passes the hazards" is established**: by running the applicable
//! scenarios themselves ([`crate::scenarios`]), with the run's strategies
//! on the run's own backends (so a shared server passes the several-
//! processes hazard and per-process `locmem` does not), right after the
//! run's cells. Nothing is looked up in a table that could drift from what
//! the scenarios show; the project's own scenarios are the evidence
//! (`sim/tests/verdict.rs` checks the outcome against them).
//!
//! # Layout
//!
//! - `mod.rs`: [`Recommendation`], [`HAZARDS`], [`judge`] (runs the
//!   hazards) and [`decide`] (picks, from numbers only).
//! - `shape.rs`: [`Shape`], what the traffic showed, seen as it is read.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::backends::BackendSpec;
use crate::config::RunConfig;
use crate::report::{CellResult, Report};
use crate::runner::{run, StrategyFactory};
use crate::scenarios;

mod shape;

pub use shape::{Shape, ShapeCell};

/// Fewer feed reads than this and the verdict says its evidence is thin.
pub const THIN_READS: u64 = 1_000;

/// The verdict of a run (`report.json`'s `recommendation`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Recommendation {
    /// The strategy to use; `null` when no cell passes.
    pub strategy: Option<String>,
    /// The backend it was measured on; `null` when no cell passes.
    pub backend: Option<String>,
    /// Why it (or why none).
    pub why: String,
    /// Every other cell, with the hazard or number that rules it out.
    pub why_not: Vec<WhyNot>,
    /// What the verdict rests on.
    pub evidence: Evidence,
}

/// One cell that is not recommended, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WhyNot {
    /// The strategy.
    pub strategy: String,
    /// The backend.
    pub backend: String,
    /// What rules it out (every failing check, `; `-separated), or, for a
    /// cell that passes, what the recommended one does better.
    pub reason: String,
}

/// What a verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Evidence {
    /// Feed reads of the user's traffic (per cell).
    pub feed_reads: u64,
    /// Writes of the user's traffic.
    pub writes: u64,
    /// Fewer than [`THIN_READS`] feed reads, or no writes: the traffic
    /// alone cannot show much, and the verdict rests on the hazard
    /// scenarios.
    pub thin: bool,
    /// The above in a sentence.
    pub summary: String,
    /// The hazard scenarios run for the verdict, per backend, and why each
    /// applies.
    pub hazards: Vec<HazardCheck>,
    /// The hazards that did not apply, and why.
    pub not_applicable: Vec<HazardSkip>,
    /// Cells during which the server evicted keys.
    pub server_evictions: Vec<ServerEviction>,
}

/// A hazard scenario run for the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HazardCheck {
    /// The scenario (`cache-sim run --scenario NAME` reproduces it).
    pub scenario: String,
    /// The backend it ran on.
    pub backend: String,
    /// Why it applies to this run.
    pub applies: String,
}

/// A hazard that does not apply to this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HazardSkip {
    /// The scenario.
    pub scenario: String,
    /// Why it does not apply.
    pub because: String,
}

/// A cell during which the server's eviction counter moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServerEviction {
    /// The strategy of the cell.
    pub strategy: String,
    /// The backend.
    pub backend: String,
    /// Keys the server evicted while the cell ran.
    pub evicted_keys: u64,
    /// The strategy invalidates by deleting (`fixed-month`, `wildcard`,
    /// `range-expansion`): what the server evicted may be what it relies
    /// on.
    pub delete_based: bool,
}

/// When a hazard applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applies {
    /// To every app, for the reason given.
    Always(&'static str),
    /// When the trace runs in several app processes.
    SeveralProcesses,
    /// On a backend whose server evicted keys during the run.
    ServerEvicts,
    /// When the traffic has named zones, ranges across daylight saving or
    /// several offsets.
    Zones,
    /// When a feed spans several calendars or a calendar has several
    /// readers.
    SharedCalendars,
}

/// A built-in hazard: the scenario that reproduces it, when it applies,
/// and what it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hazard {
    /// The scenario's name.
    pub scenario: &'static str,
    /// When it applies.
    pub applies: Applies,
    /// What a strategy that fails it gets wrong.
    pub breaks: &'static str,
}

/// Every hazard the verdict checks, in the order reasons list them.
pub const HAZARDS: [Hazard; 8] = [
    Hazard {
        scenario: "seed-october-2025",
        applies: Applies::Always("every calendar app deletes items"),
        breaks: "a deleted item comes back after a refresh, the seed's incident",
    },
    Hazard {
        scenario: "stale-set-race",
        applies: Applies::Always("every app's reads and writes overlap in time"),
        breaks: "a reader that queried the database before a write commits fills the cache after its invalidation",
    },
    Hazard {
        scenario: "version-eviction",
        applies: Applies::Always("every cache server can lose a key, by eviction, restart or failover"),
        breaks: "a lost version key makes old entries readable again",
    },
    Hazard {
        scenario: "item-moved",
        applies: Applies::Always("every calendar app moves items between dates"),
        breaks: "an edit that moves an item leaves its old dates cached",
    },
    Hazard {
        scenario: "shared-calendar",
        applies: Applies::SharedCalendars,
        breaks: "a write must reach every viewer of a shared calendar, whoever wrote it",
    },
    Hazard {
        scenario: "multi-process-locmem",
        applies: Applies::SeveralProcesses,
        breaks: "a write invalidates only its own process's in-process store",
    },
    Hazard {
        scenario: "timezone-variants",
        applies: Applies::Zones,
        breaks: "guessed keys miss the same window sent in other offsets, named zones or across daylight saving",
    },
    Hazard {
        scenario: scenarios::SERVER_EVICTION,
        applies: Applies::ServerEvicts,
        breaks: "the server evicts a key index while the entries it lists survive, so a write cannot delete them",
    },
];

/// What one hazard scenario showed for one cell: stale reads and reads,
/// or why it could not run.
pub type Outcome = std::result::Result<(u64, u64), String>;

/// Hazard outcomes by (scenario, backend label, strategy).
pub type Outcomes = BTreeMap<(String, String, String), Outcome>;

/// Runs the hazards that apply to `report`'s run (traffic shape `shape`)
/// with the run's strategies (built by `strategies`) on its backends, and
/// decides.
pub fn judge(cfg: &RunConfig, report: &Report, shape: &Shape, strategies: &StrategyFactory) -> Recommendation {
    let (checks, skips) = applicable(cfg, report, shape);
    let mut outcomes = Outcomes::new();
    for hazard in HAZARDS {
        let on: Vec<&BackendSpec> = cfg
            .backends
            .iter()
            .filter(|b| {
                checks
                    .iter()
                    .any(|c| c.scenario == hazard.scenario && c.backend == b.label())
            })
            .collect();
        if on.is_empty() {
            continue;
        }
        let mut hcfg = RunConfig::new(hazard.scenario);
        hcfg.seed = cfg.seed;
        hcfg.backends = on.iter().map(|b| (*b).clone()).collect();
        hcfg.strategies = cfg.strategies.clone();
        hcfg.threads = cfg.threads;
        hcfg.home_offset = cfg.home_offset;
        hcfg.aside = cfg.aside.clone();
        hcfg.fenced_writes = cfg.fenced_writes;
        hcfg.outage_limit = cfg.outage_limit;
        hcfg.verdict = false;
        let (name, seed) = (hazard.scenario, cfg.seed);
        let ran = run(
            &hcfg,
            Arc::new(move || scenarios::source(name, seed)),
            strategies.clone(),
            None,
        );
        for b in &on {
            for s in &cfg.strategies {
                let key = (name.to_owned(), b.label(), s.clone());
                let outcome = match &ran {
                    Ok(r) => r
                        .results
                        .iter()
                        .find(|c| &c.strategy == s && c.backend == b.label())
                        .map(|c| {
                            let backend_errors = c.errors - c.failed_reads.unwrap_or(0).min(c.errors);
                            if backend_errors > 0 {
                                Err(format!("{backend_errors} backend errors"))
                            } else {
                                Ok((c.stale_reads, c.reads))
                            }
                        })
                        .unwrap_or_else(|| Err("no result".to_owned())),
                    Err(e) => Err(e.to_string()),
                };
                outcomes.insert(key, outcome);
            }
        }
    }
    let deletes = |strategy: &str| {
        strategies(strategy, &cache_core::CacheOptions::default())
            .map(|s| s.needs().invalidates_by_delete)
            .unwrap_or(false)
    };
    decide(report, &checks, skips, &outcomes, &deletes)
}

/// Which hazards apply to which backend of the run, and which do not.
fn applicable(cfg: &RunConfig, report: &Report, shape: &Shape) -> (Vec<HazardCheck>, Vec<HazardSkip>) {
    let (mut checks, mut skips) = (Vec::new(), Vec::new());
    for hazard in HAZARDS {
        let because: std::result::Result<String, String> = match hazard.applies {
            Applies::Always(why) => Ok(why.to_owned()),
            Applies::SeveralProcesses if shape.processes > 1 => {
                Ok(format!("your traffic runs in {} app processes", shape.processes))
            }
            Applies::SeveralProcesses => Err("your traffic runs in one app process".to_owned()),
            Applies::Zones => shape
                .zones
                .clone()
                .ok_or_else(|| "every feed uses one offset".to_owned()),
            Applies::SharedCalendars => shape
                .shared
                .clone()
                .ok_or_else(|| "every calendar is read alone, by one user".to_owned()),
            Applies::ServerEvicts => {
                let mut any = false;
                for b in &cfg.backends {
                    let evicted: u64 = report
                        .results
                        .iter()
                        .filter(|c| c.backend == b.label())
                        .filter_map(|c| c.server_evictions)
                        .sum();
                    if evicted > 0 {
                        any = true;
                        checks.push(HazardCheck {
                            scenario: hazard.scenario.to_owned(),
                            backend: b.label(),
                            applies: format!("the server evicted {} keys during the run", thousands(evicted)),
                        });
                    }
                }
                if !any {
                    skips.push(HazardSkip {
                        scenario: hazard.scenario.to_owned(),
                        because: "no server evicted a key during the run; in-process stores do not count theirs"
                            .to_owned(),
                    });
                }
                continue;
            }
        };
        match because {
            Ok(applies) => checks.extend(cfg.backends.iter().map(|b| HazardCheck {
                scenario: hazard.scenario.to_owned(),
                backend: b.label(),
                applies: applies.clone(),
            })),
            Err(because) => skips.push(HazardSkip {
                scenario: hazard.scenario.to_owned(),
                because,
            }),
        }
    }
    (checks, skips)
}

/// `n` with thousands separators (`3,014,109`).
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Picks the cell to recommend from `report`'s numbers, the hazard
/// `checks` that apply and their `outcomes`; `deletes` says whether a
/// strategy invalidates by deleting (to flag it where the server evicted).
pub fn decide(
    report: &Report,
    checks: &[HazardCheck],
    not_applicable: Vec<HazardSkip>,
    outcomes: &Outcomes,
    deletes: &dyn Fn(&str) -> bool,
) -> Recommendation {
    let feed_reads = report.results.iter().map(|c| c.reads).max().unwrap_or(0);
    let writes = report.results.iter().map(|c| c.writes).max().unwrap_or(0);
    let reasons: Vec<Vec<String>> = report
        .results
        .iter()
        .map(|c| rule_outs(report, c, checks, outcomes))
        .collect();
    let best = report
        .results
        .iter()
        .zip(&reasons)
        .filter(|(_, r)| r.is_empty())
        .map(|(c, _)| c)
        .min_by(|a, b| {
            a.ops_per_read
                .total_cmp(&b.ops_per_read)
                .then(b.hit_rate.total_cmp(&a.hit_rate))
                .then(a.strategy.cmp(&b.strategy))
                .then(a.backend.cmp(&b.backend))
        });
    let passing = reasons.iter().filter(|r| r.is_empty()).count();
    let mut why_not = Vec::new();
    for (c, r) in report.results.iter().zip(&reasons) {
        if best.is_some_and(|b| std::ptr::eq(b, c)) {
            continue;
        }
        let reason = match (r.is_empty(), best) {
            (false, _) => r.join("; "),
            (true, Some(b)) if c.ops_per_read > b.ops_per_read => format!(
                "passes every check, but makes {:.2} backend round trips per read against {:.2}",
                c.ops_per_read, b.ops_per_read
            ),
            (true, Some(b)) => format!(
                "passes every check, as many round trips per read ({:.2}), but hits {:.1}% against {:.1}%",
                c.ops_per_read,
                c.hit_rate * 100.0,
                b.hit_rate * 100.0
            ),
            (true, None) => String::new(),
        };
        why_not.push(WhyNot {
            strategy: c.strategy.clone(),
            backend: c.backend.clone(),
            reason,
        });
    }
    let traffic = if report.stale_judged {
        "stale reads"
    } else {
        "at-risk reads"
    };
    let why = match best {
        Some(b) => {
            let applied: Vec<String> = checks
                .iter()
                .filter(|h| h.backend == b.backend)
                .map(|h| format!("`{}`", h.scenario))
                .collect();
            format!(
                "0 {traffic} in {} feed reads of your traffic, and it passes the {} hazard scenario(s) that apply ({}); \
                 of the {passing} cell(s) that pass, it makes the fewest backend round trips per read ({:.2}; ties go \
                 to the higher hit rate, {:.1}% here).",
                thousands(b.reads),
                applied.len(),
                applied.join(", "),
                b.ops_per_read,
                b.hit_rate * 100.0
            )
        }
        None => {
            let mut why = format!(
                "No recommendation: every cell serves {traffic} on your traffic or fails a hazard scenario that applies \
                 (see why not)."
            );
            let per_process = report.results.iter().zip(&reasons).any(|(c, r)| {
                c.backend.starts_with("locmem") && r.iter().any(|x| x.contains("`multi-process-locmem`"))
            });
            if per_process {
                why.push_str(
                    " Several app processes each with an in-process store go stale whatever the strategy: use a \
                     shared store (--backend redis://…, memcache://…) or two tiers (two-tier:locmem+<shared URL>).",
                );
            }
            why
        }
    };
    let thin = feed_reads < THIN_READS || writes == 0;
    let summary = match (feed_reads < THIN_READS, writes == 0) {
        (true, true) => format!(
            "thin: {} feed reads (fewer than {}) and no writes, so your traffic can show no stale read; the verdict \
             rests on the hazard scenarios",
            thousands(feed_reads),
            thousands(THIN_READS)
        ),
        (true, false) => format!(
            "thin: {} feed reads (fewer than {}) and {} writes; the verdict rests mostly on the hazard scenarios",
            thousands(feed_reads),
            thousands(THIN_READS),
            thousands(writes)
        ),
        (false, true) => format!(
            "thin: {} feed reads but no writes, so your traffic can show no stale read; the verdict rests on the \
             hazard scenarios",
            thousands(feed_reads)
        ),
        (false, false) => format!(
            "{} feed reads and {} writes of your traffic, and the hazard scenarios that apply",
            thousands(feed_reads),
            thousands(writes)
        ),
    };
    let server_evictions = report
        .results
        .iter()
        .filter_map(|c| {
            c.server_evictions.filter(|n| *n > 0).map(|n| ServerEviction {
                strategy: c.strategy.clone(),
                backend: c.backend.clone(),
                evicted_keys: n,
                delete_based: deletes(&c.strategy),
            })
        })
        .collect();
    Recommendation {
        strategy: best.map(|b| b.strategy.clone()),
        backend: best.map(|b| b.backend.clone()),
        why,
        why_not,
        evidence: Evidence {
            feed_reads,
            writes,
            thin,
            summary,
            hazards: checks.to_vec(),
            not_applicable,
            server_evictions,
        },
    }
}

/// Everything that rules cell `c` out (empty: it passes).
fn rule_outs(report: &Report, c: &CellResult, checks: &[HazardCheck], outcomes: &Outcomes) -> Vec<String> {
    let mut out = Vec::new();
    if report.stale_judged && c.stale_reads > 0 {
        out.push(format!(
            "served {} stale reads of {} on your traffic (up to {:.1} ms behind)",
            thousands(c.stale_reads),
            thousands(c.reads),
            c.max_staleness_ms
        ));
    }
    if !report.stale_judged && c.at_risk_reads > 0 {
        out.push(format!(
            "served {} at-risk reads of {} on your traffic",
            thousands(c.at_risk_reads),
            thousands(c.reads)
        ));
    }
    // Reads an injected database fault failed say nothing about the
    // strategy; backend errors do.
    let backend_errors = c.errors - c.failed_reads.unwrap_or(0).min(c.errors);
    if backend_errors > 0 {
        out.push(format!(
            "{} backend errors on your traffic (those reads fell back to the database, so its counts prove nothing)",
            thousands(backend_errors)
        ));
    }
    // Failing hazards: the first with what it breaks, the others by count.
    let mut failed: Vec<String> = Vec::new();
    for check in checks.iter().filter(|h| h.backend == c.backend) {
        let hazard = HAZARDS.iter().find(|h| h.scenario == check.scenario);
        let key = (check.scenario.clone(), c.backend.clone(), c.strategy.clone());
        match outcomes.get(&key) {
            Some(Ok((0, _))) => {}
            Some(Ok((stale, reads))) => {
                let evicted = match (hazard.map(|h| h.applies), c.server_evictions) {
                    (Some(Applies::ServerEvicts), Some(n)) if n > 0 => {
                        format!("; the server evicted {} keys during this cell", thousands(n))
                    }
                    _ => String::new(),
                };
                let what = match (failed.is_empty(), hazard) {
                    (true, Some(h)) => format!(": {}", h.breaks),
                    _ => String::new(),
                };
                failed.push(format!(
                    "`{}` ({stale} of {reads} reads stale{evicted}{what})",
                    check.scenario
                ));
            }
            Some(Err(e)) => out.push(format!("`{}` could not be checked here: {e}", check.scenario)),
            None => out.push(format!("`{}` was not checked", check.scenario)),
        }
    }
    if !failed.is_empty() {
        out.push(format!("fails {}", failed.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(3_014_109), "3,014,109");
    }

    #[test]
    fn every_hazard_is_a_scenario() {
        for h in HAZARDS {
            assert!(scenarios::info(h.scenario).is_ok(), "{}", h.scenario);
        }
    }
}
