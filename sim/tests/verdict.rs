//! Issue 26: the verdict recommends only a cell that is correct on the
//! user's traffic and passes the built-in hazard scenarios that apply to
//! the run's shape; every other cell gets the hazard or number that rules
//! it out, and what the verdict claims is what the scenarios show.

use std::process::Command;
use std::sync::Arc;

use sim::backends::BackendSpec;
use sim::report::Report;
use sim::runner::{registry, run, RunConfig};
use sim::scenarios;
use sim::traffic::TrafficConfig;
use sim::verdict::{Recommendation, HAZARDS};

fn scenario(name: &'static str, backends: &[&str]) -> Report {
    let mut cfg = RunConfig::new(name);
    cfg.backends = backends.iter().map(|b| BackendSpec::parse(b).unwrap()).collect();
    run(&cfg, Arc::new(move || scenarios::source(name, 1)), registry(), None).unwrap()
}

fn verdict(r: &Report) -> &Recommendation {
    r.recommendation.as_ref().unwrap()
}

fn why_not<'a>(rec: &'a Recommendation, strategy: &str, backend: &str) -> &'a str {
    &rec.why_not
        .iter()
        .find(|w| w.strategy == strategy && w.backend == backend)
        .unwrap_or_else(|| panic!("no why-not for {strategy} on {backend}: {rec:?}"))
        .reason
}

/// The newcomer's first command: `cache-sim run`, nothing else.
#[test]
fn the_default_run_recommends_a_strategy_correct_by_construction_and_says_why_not_the_others() {
    let out = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
        .args(["run", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // The terminal output ends with the verdict and the why-not table.
    let tail = stdout
        .split("**Recommendation: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    let strategy = tail.split(' ').next().unwrap();
    assert!(
        ["versioned", "bucketed", "stamped"].contains(&strategy),
        "{strategy}: not a generation-based strategy"
    );
    assert!(tail.contains("| why not | backend | reason |"), "{tail}");
    let range_expansion = tail
        .lines()
        .find(|l| l.starts_with("| range-expansion |"))
        .unwrap_or_else(|| panic!("{tail}"));
    assert!(range_expansion.contains("fails `stale-set-race`"), "{range_expansion}");
    assert!(stdout.trim_end().ends_with('|'), "the table is last");
    assert!(
        tail.contains("Evidence: thin: 11 feed reads (fewer than 1,000)"),
        "{tail}"
    );
}

#[test]
fn report_json_carries_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
        .args(["run", "--quiet", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    let rec = &json["recommendation"];
    for field in ["strategy", "backend", "why", "why_not", "evidence"] {
        assert!(!rec[field].is_null(), "{field} missing: {rec}");
    }
    assert_eq!(rec["backend"], "locmem");
    let not = rec["why_not"].as_array().unwrap();
    assert_eq!(not.len(), cache_core::strategy::NAMES.len() - 1);
    for w in not {
        assert!(w["strategy"].is_string() && w["backend"].is_string() && w["reason"].is_string());
    }
    assert_eq!(rec["evidence"]["thin"], true);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("id=\"why-not\""));
}

/// What the verdict says a strategy fails is what the scenario shows when
/// run on its own, and a strategy it recommends shows no stale read in any
/// hazard that applied.
#[test]
fn the_verdict_is_backed_by_the_scenarios_it_names() {
    let r = scenario("seed-october-2025", &["locmem"]);
    let rec = verdict(&r);
    let chosen = rec.strategy.as_deref().unwrap();
    for check in &rec.evidence.hazards {
        let name = HAZARDS.iter().find(|h| h.scenario == check.scenario).unwrap().scenario;
        let alone = scenario(name, &["locmem"]);
        for c in &alone.results {
            let claim = format!("`{name}` ({} of {} reads stale", c.stale_reads, c.reads);
            if c.strategy == chosen {
                assert_eq!(c.stale_reads, 0, "{name}: the recommended {chosen} fails it");
            } else if c.stale_reads > 0 {
                let reason = why_not(rec, &c.strategy, "locmem");
                assert!(reason.contains(&claim), "{}: {claim:?} not in {reason:?}", c.strategy);
            }
        }
    }
    // And a hazard that does not apply here is named with the reason.
    assert!(rec
        .evidence
        .not_applicable
        .iter()
        .any(|h| h.scenario == "timezone-variants" && h.because.contains("one offset")));
}

#[test]
fn several_processes_on_per_process_stores_get_no_recommendation_and_shared_ones_do() {
    let r = scenario("multi-process-locmem", &["locmem", "two-tier:locmem+locmem"]);
    let rec = verdict(&r);
    // Every strategy fails on per-process locmem; the shared L2 passes.
    assert_eq!(rec.backend.as_deref(), Some("two-tier:locmem+locmem"), "{rec:?}");
    assert_eq!(rec.strategy.as_deref(), Some("stamped"), "{rec:?}");
    assert!(why_not(rec, "stamped", "locmem").contains("fails `multi-process-locmem`"));
    let alone = scenario("multi-process-locmem", &["locmem"]);
    let rec = verdict(&alone);
    assert_eq!(rec.strategy, None);
    assert!(rec.why.contains("use a shared store"), "{}", rec.why);
    assert!(alone.to_markdown().contains("**No recommendation.**"));
}

/// Generated traffic shows every zone and shared-calendar trigger.
#[test]
fn generated_traffic_applies_the_zone_and_shared_calendar_hazards() {
    let mut t = TrafficConfig::default();
    t.users = 30;
    t.actions = 3_000;
    t.days = 1;
    let mut cfg = RunConfig::new("realistic-small");
    cfg.strategies = ["range-expansion", "versioned", "stamped"].map(String::from).to_vec();
    let r = run(
        &cfg,
        Arc::new(move || scenarios::generated(t.clone(), "realistic")),
        registry(),
        None,
    )
    .unwrap();
    let rec = verdict(&r);
    let applied: Vec<&str> = rec.evidence.hazards.iter().map(|h| h.scenario.as_str()).collect();
    assert!(
        applied.contains(&"timezone-variants") && applied.contains(&"shared-calendar"),
        "{applied:?}"
    );
    assert!(!rec.evidence.thin, "{}", rec.evidence.summary);
    let reason = why_not(rec, "range-expansion", "locmem");
    assert!(
        reason.contains("`timezone-variants`") && reason.contains("`shared-calendar`"),
        "{reason}"
    );
    assert_eq!(rec.strategy.as_deref(), Some("stamped"));
}

#[test]
fn traffic_without_writes_is_thin_evidence() {
    let mut cfg = RunConfig::new("seed-october-2025");
    cfg.strategies = vec!["versioned".into(), "stamped".into()];
    let r = run(
        &cfg,
        Arc::new(|| {
            let src = scenarios::source("seed-october-2025", 1)?;
            let events: Vec<_> = src
                .events
                .filter(|e| !matches!(e, Ok(sim::trace::Event::Write { write, .. }) if write.kind != sim::db::WriteKind::Load))
                .collect();
            Ok(sim::trace::Source {
                header: src.header,
                events: Box::new(events.into_iter()),
            })
        }),
        registry(),
        None,
    )
    .unwrap();
    let e = &verdict(&r).evidence;
    assert!(e.thin && e.writes == 0);
    assert!(e.summary.contains("no writes"), "{}", e.summary);
}
