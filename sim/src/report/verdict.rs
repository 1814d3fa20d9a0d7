//! The verdict and the server-eviction notice, as Markdown (`report.md`
//! and the terminal) and HTML (`report.html`); `report.json` carries the
//! same as data ([`crate::verdict::Recommendation`]).

use std::fmt::Write as _;

use super::html::esc;
use super::Report;
use crate::verdict::{thousands, Recommendation};

/// `text` escaped for HTML, its `code` spans (Markdown backticks) as
/// `<code>` elements.
fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

/// `strategy on backend`, or why there is none.
fn headline(rec: &Recommendation) -> String {
    match (&rec.strategy, &rec.backend) {
        (Some(s), Some(b)) => format!("Recommendation: {s} on {b}"),
        _ => "No recommendation".to_owned(),
    }
}

/// Cells whose server evicted keys while they ran: (strategy, backend,
/// evicted keys, invalidates by deleting, when known).
fn evictions(report: &Report) -> Vec<(&str, &str, u64, Option<bool>)> {
    report
        .results
        .iter()
        .filter_map(|c| {
            let n = c.server_evictions.filter(|n| *n > 0)?;
            let delete_based = report.recommendation.as_ref().and_then(|r| {
                r.evidence
                    .server_evictions
                    .iter()
                    .find(|e| e.strategy == c.strategy && e.backend == c.backend)
                    .map(|e| e.delete_based)
            });
            Some((c.strategy.as_str(), c.backend.as_str(), n, delete_based))
        })
        .collect()
}

const EVICTION_NOTE: &str = "The server evicted keys while these cells ran (its own counter, read before and after \
     each cell). Delete-based strategies (fixed-month, wildcard, range-expansion) rely on the server keeping what \
     they wrote, such as a key index: what it evicts, a write cannot delete, and stale entries are served until \
     their TTL. Generation-based strategies turn a lost key into misses.";

fn flag(delete_based: Option<bool>) -> &'static str {
    match delete_based {
        Some(true) => "delete-based: may serve stale entries it can no longer find",
        Some(false) => "lost keys become misses",
        None => "",
    }
}

/// The server-eviction section of `report.md` (empty when no server
/// evicted).
pub(crate) fn evictions_markdown(report: &Report) -> String {
    let rows = evictions(report);
    if rows.is_empty() {
        return String::new();
    }
    let mut s =
        format!("\nServer eviction: {EVICTION_NOTE}\n\n| strategy | backend | evicted keys | |\n|---|---|---:|---|\n");
    for (strategy, backend, n, delete_based) in rows {
        let _ = writeln!(
            s,
            "| {strategy} | {backend} | {} | {} |",
            thousands(n),
            flag(delete_based)
        );
    }
    s
}

/// The server-eviction section of `report.html`.
pub(crate) fn evictions_html(report: &Report) -> String {
    let rows = evictions(report);
    if rows.is_empty() {
        return String::new();
    }
    let mut h = format!(
        "<section id=\"server-eviction\"><h2>Server eviction</h2>\n<p class=\"warn\">{}</p>\n<table>\n<tr><th>strategy</th><th>backend</th><th>evicted keys</th><th></th></tr>\n",
        esc(EVICTION_NOTE)
    );
    for (strategy, backend, n, delete_based) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(strategy),
            esc(backend),
            thousands(n),
            esc(flag(delete_based))
        );
    }
    h.push_str("</table></section>\n");
    h
}

/// The verdict at the end of `report.md` and of the terminal output.
pub(crate) fn markdown(rec: &Recommendation) -> String {
    let mut s = format!("\n**{}.** {}\n", headline(rec), rec.why);
    let e = &rec.evidence;
    let _ = write!(s, "\nEvidence: {}.", e.summary);
    let mut run: Vec<String> = Vec::new();
    for h in &e.hazards {
        let item = format!("`{}`: {}", h.scenario, h.applies);
        if !run.contains(&item) {
            run.push(item);
        }
    }
    if !run.is_empty() {
        let _ = write!(s, " Hazards checked: {}.", run.join("; "));
    }
    if !e.not_applicable.is_empty() {
        let skipped: Vec<String> = e
            .not_applicable
            .iter()
            .map(|h| format!("`{}`: {}", h.scenario, h.because))
            .collect();
        let _ = write!(s, " Not applicable: {}.", skipped.join("; "));
    }
    s.push('\n');
    if !rec.why_not.is_empty() {
        s.push_str("\n| why not | backend | reason |\n|---|---|---|\n");
        for w in &rec.why_not {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                w.strategy,
                w.backend,
                w.reason.replace('|', "\\|")
            );
        }
    }
    s
}

/// The verdict in `report.html`: the recommendation line, the why-not
/// table and the evidence.
pub(crate) fn html(rec: &Recommendation) -> String {
    let mut h = format!(
        "<p class=\"rec\" id=\"recommendation\">{} — {}</p>\n",
        esc(&headline(rec)),
        html_text(&rec.why)
    );
    let e = &rec.evidence;
    let _ = writeln!(
        h,
        "<p class=\"{}\" id=\"evidence\">Evidence: {}.</p>",
        if e.thin { "warn" } else { "note" },
        esc(&e.summary)
    );
    if !rec.why_not.is_empty() {
        h.push_str("<section id=\"why-not\"><h2>Why not the others</h2>\n<table>\n<tr><th>strategy</th><th>backend</th><th>why not</th></tr>\n");
        for w in &rec.why_not {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"why\">{}</td></tr>",
                esc(&w.strategy),
                esc(&w.backend),
                html_text(&w.reason)
            );
        }
        h.push_str("</table>\n");
        let mut checked: Vec<String> = Vec::new();
        for c in &e.hazards {
            let item = format!("{}: {}", c.scenario, c.applies);
            if !checked.contains(&item) {
                checked.push(item);
            }
        }
        let skipped: Vec<String> = e
            .not_applicable
            .iter()
            .map(|s| format!("{}: {}", s.scenario, s.because))
            .collect();
        let _ = writeln!(
            h,
            "<p class=\"note\">Hazards checked: {}.{}</p></section>",
            esc(&checked.join("; ")),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" Not applicable: {}.", esc(&skipped.join("; ")))
            }
        );
    }
    h
}
