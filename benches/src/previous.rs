//! Figures kept from an earlier BENCHMARKS.md, so that a run of some
//! suites can be merged with the figures of the others (`bench-report
//! --previous BENCHMARKS.md`).
//!
//! Why: a full `benches/run` takes ~20 minutes of a shared 2-core machine;
//! a change that only touches one suite's subject is measured by running
//! that suite again. The report then says which groups were re-measured
//! and where the rest come from.

use crate::{Figure, Results};

/// What an earlier report held: its figures (from its "All figures" table),
/// its header, and its invalidation curve section verbatim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Previous {
    /// Every figure of its "All figures" table.
    pub results: Results,
    /// Its `date` line.
    pub date: String,
    /// Its `commit` line (without backquotes).
    pub commit: String,
    /// Its "Invalidation cost curve" section, from its heading to the end.
    pub curve: String,
}

/// Reads a BENCHMARKS.md written by [`crate::render_markdown`] (and
/// [`crate::render_curve`]); rows it cannot read are skipped.
pub fn parse_previous(markdown: &str) -> Previous {
    let mut prev = Previous::default();
    let mut in_figures = false;
    for line in markdown.lines() {
        if let Some(d) = line.strip_prefix("- date: ") {
            prev.date = d.trim().to_owned();
        } else if let Some(c) = line.strip_prefix("- commit: ") {
            prev.commit = c.trim().trim_matches('`').to_owned();
        } else if line.starts_with("## ") {
            in_figures = line == "## All figures";
        } else if in_figures {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // "| group | subject | figure | ratio |" splits into 6 cells.
            if let [_, group, subject, figure, _, _] = cells[..] {
                if let Some(f) = parse_figure(figure) {
                    prev.results
                        .entry(group.to_owned())
                        .or_default()
                        .insert(subject.to_owned(), f);
                }
            }
        }
    }
    if let Some(i) = markdown.find("\n## Invalidation cost curve") {
        prev.curve = markdown[i..].to_owned();
    }
    prev
}

/// A figure as [`Figure`] renders it: `420 ns`, `1.49 µs`, `5.45 ms`,
/// `288.0 k ops/s`, `1.20 M ops/s`.
pub fn parse_figure(s: &str) -> Option<Figure> {
    let (number, unit) = s.split_once(' ')?;
    let x: f64 = number.parse().ok()?;
    Some(match unit {
        "ns" => Figure::Nanos(x),
        "µs" => Figure::Nanos(x * 1e3),
        "ms" => Figure::Nanos(x * 1e6),
        "k ops/s" => Figure::OpsPerSec(x * 1e3),
        "M ops/s" => Figure::OpsPerSec(x * 1e6),
        _ => return None,
    })
}

/// `results` with every group of `prev` that `results` lacks, and a note
/// saying which groups this run measured and where the others come from
/// (`None` when nothing was kept).
pub fn merge_previous(results: &mut Results, prev: &Previous) -> Option<String> {
    let measured: Vec<String> = results.keys().cloned().collect();
    let mut kept = 0;
    for (group, subjects) in &prev.results {
        if !results.contains_key(group) {
            results.insert(group.clone(), subjects.clone());
            kept += 1;
        }
    }
    if kept == 0 {
        return None;
    }
    Some(format!(
        "Partly re-measured: this run measured {} groups ({}); the other {kept} groups' figures are \
         kept from the previous report (commit `{}`, {}).",
        measured.len(),
        measured.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", "),
        prev.commit,
        prev.date
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{render_markdown, Context};

    #[test]
    fn figures_survive_a_render_and_a_parse() {
        let mut r = Results::new();
        for (g, s, f) in [
            ("locmem/get_hit", "ours", Figure::Nanos(465.0)),
            ("locmem/get_hit", "baseline", Figure::Nanos(420.0)),
            ("locmem/set", "ours", Figure::Nanos(1490.0)),
            ("invalidate/x", "1000 keys", Figure::Nanos(5_450_900_000.0)),
            ("sim/realistic/locmem", "2-threads", Figure::OpsPerSec(268_600.0)),
            (
                "two_tier/hit/8KiB",
                "two-tier+backplane",
                Figure::OpsPerSec(1_250_000.0),
            ),
        ] {
            r.entry(g.to_owned()).or_default().insert(s.to_owned(), f);
        }
        let ctx = Context {
            date: "2026-12-01 05:18 UTC".into(),
            commit: "05ad786".into(),
            ..Context::default()
        };
        let md = render_markdown(&r, &ctx) + "\n## Invalidation cost curve\n\nthe curve\n";
        let prev = parse_previous(&md);
        assert_eq!(prev.commit, "05ad786");
        assert_eq!(prev.date, "2026-12-01 05:18 UTC");
        assert!(prev.curve.starts_with("\n## Invalidation cost curve"));
        assert_eq!(prev.results.len(), r.len());
        for (g, subjects) in &r {
            for (s, f) in subjects {
                let back = prev.results[g][s].ops_per_sec();
                // Rendered to 3–4 significant digits.
                assert!((back / f.ops_per_sec() - 1.0).abs() < 0.005, "{g} {s}: {back} vs {f:?}");
            }
        }
        assert_eq!(parse_figure("12 apples"), None);
        assert_eq!(parse_figure("—"), None);
    }

    #[test]
    fn only_groups_this_run_lacks_are_kept() {
        let mut prev = Previous {
            commit: "abc".into(),
            ..Previous::default()
        };
        for g in ["locmem/set", "redis/get"] {
            prev.results
                .entry(g.to_owned())
                .or_default()
                .insert("ours".into(), Figure::Nanos(1.0));
        }
        let mut now = Results::new();
        now.entry("locmem/set".into())
            .or_default()
            .insert("ours".into(), Figure::Nanos(2.0));
        let note = merge_previous(&mut now, &prev).unwrap();
        assert_eq!(now["locmem/set"]["ours"], Figure::Nanos(2.0), "this run's figure wins");
        assert_eq!(now["redis/get"]["ours"], Figure::Nanos(1.0));
        assert!(note.contains("measured 1 groups (`locmem/set`)"), "{note}");
        assert!(note.contains("other 1 groups") && note.contains("`abc`"), "{note}");
        let mut full = prev.results.clone();
        assert_eq!(merge_previous(&mut full, &prev), None, "nothing kept, no note");
    }
}
