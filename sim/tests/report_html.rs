//! `report.html` holds the new charts and is well-formed, and a memory sweep
//! (`locmem:N` sizes) gives every row a distinct backend label.

use std::sync::Arc;

use sim::backends::BackendSpec;
use sim::runner::{registry, run, RunConfig};
use sim::scenarios;

/// HTML void elements (no closing tag).
const VOID: [&str; 6] = ["meta", "br", "img", "hr", "input", "link"];

/// Checks that every element is closed, in order (self-closing SVG elements
/// allowed), that attribute quotes balance and that no raw `<`/`&` is left
/// in text: a strict, XML-like reading that a browser's lenient parser
/// would paper over.
fn check_well_formed(html: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    let mut elements = 0;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        if let Some(amp) = text.find('&') {
            let entity = &text[amp..];
            if !entity.contains(';') || entity.find(';').unwrap() > 8 {
                return Err(format!("raw & in text: {:?}", &text[amp..(amp + 20).min(text.len())]));
            }
        }
        let close = rest[open..].find('>').ok_or("unterminated tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if !tag.matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if top != name.trim() {
                return Err(format!("</{name}> closes <{top}>"));
            }
            continue;
        }
        elements += 1;
        let name = tag
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned();
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        stack.push(name);
    }
    if stack.is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn a_memory_sweep_has_distinct_labels_and_the_html_holds_the_charts() {
    let mut cfg = RunConfig::new("seed-october-2025");
    cfg.strategies = vec!["fixed-month".into(), "versioned".into(), "stamped".into()];
    cfg.backends = ["locmem:1", "locmem:4", "locmem:64"]
        .iter()
        .map(|b| BackendSpec::parse(b).unwrap())
        .collect();
    let report = run(
        &cfg,
        Arc::new(|| scenarios::source("seed-october-2025", 1)),
        registry(),
        None,
    )
    .unwrap();
    let mut labels: Vec<&str> = report.results.iter().map(|r| r.backend.as_str()).collect();
    labels.dedup();
    assert_eq!(labels, ["locmem:1MiB", "locmem:4MiB", "locmem:64MiB"]);
    assert_eq!(report.backends, labels);

    let html = report.to_html();
    let elements = check_well_formed(&html).unwrap_or_else(|e| panic!("{e}"));
    assert!(elements > 100);
    for id in [
        "recommendation",
        "chart-stale-over-time",
        "chart-hit-rate-vs-memory",
        "chart-latency",
        "chart-hit-rate",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "missing {id}");
    }
    // One small multiple per cell, each with both axis titles.
    let small = html
        .split("id=\"chart-stale-over-time\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert_eq!(small.matches("<svg").count(), report.results.len());
    assert_eq!(small.matches(">time (UTC)<").count(), report.results.len());
    assert!(small.contains("Oct "), "a date axis, not seconds");
    assert!(html.contains("memory per process, MiB"));
    assert!(html.contains("feed latency, ms"));
    // The verdict: a cell that passes, named first, then why not the others.
    let verdict = report.recommendation.as_ref().unwrap();
    let (strategy, backend) = (
        verdict.strategy.as_deref().unwrap(),
        verdict.backend.as_deref().unwrap(),
    );
    assert_eq!(strategy, "stamped", "{verdict:?}");
    let cell = report
        .results
        .iter()
        .find(|r| r.strategy == strategy && r.backend == backend)
        .unwrap();
    assert_eq!(cell.stale_reads, 0);
    let rec = html.split("id=\"recommendation\">").nth(1).unwrap();
    assert!(
        rec.starts_with(&format!("Recommendation: {strategy} on {backend} — ")),
        "{rec}"
    );
    let why_not = html
        .split("id=\"why-not\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert_eq!(why_not.matches("<tr><td>").count(), report.results.len() - 1);
    assert!(why_not.contains("fixed-month") && why_not.contains("stale-set-race"));
    // Latency of hits and misses apart, with the share each stands for.
    let latency = html.split("id=\"chart-latency\"").nth(1).unwrap();
    assert!(latency.contains("ms hit p50 (") && latency.contains("ms miss p99"));
}

#[test]
fn the_checker_rejects_broken_html() {
    assert!(check_well_formed("<p><b>x</p></b>").is_err());
    assert!(check_well_formed("<p>a & b</p>").is_err());
    assert!(check_well_formed("<div><svg><rect x=\"1/></svg></div>").is_err());
    assert!(check_well_formed("<p>ok &amp; fine<br></p>").is_ok());
}
