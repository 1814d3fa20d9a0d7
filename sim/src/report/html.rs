//! `report.html`: the verdict (recommendation, why not the others,
//! evidence), the table, and inline SVG charts with axis titles — cumulative stale reads on
//! a date axis (one small chart per cell), hit rate against memory (a
//! `locmem:16,64,…` sweep), feed latency of hits and misses apart, and bars of hit rate,
//! stale rate and ops per write.
//!
//! Label widths are computed from the longest label (at ~7 px per
//! character of the 12 px font), so no label is clipped however long the
//! backend names are. The output is well-formed HTML (the report test parses
//! it and checks for parse errors).

use std::fmt::Write as _;

use chrono::{DateTime, Duration as Span, Utc};

use super::{CellResult, Report};

/// Approximate width of one character of the 12 px sans-serif font, px.
const CHAR_PX: f64 = 7.2;

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PALETTE: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
];

fn text_px(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_PX
}

/// Row labels: the strategy, with the backend when there are several.
fn labels(report: &Report) -> Vec<String> {
    report
        .results
        .iter()
        .map(|r| {
            if report.backends.len() > 1 {
                format!("{} @ {}", r.strategy, r.backend)
            } else {
                r.strategy.clone()
            }
        })
        .collect()
}

/// The whole page.
pub(crate) fn render(report: &Report) -> String {
    let labels = labels(report);
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>cache-sim report</title>\n",
    );
    h.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1150px}table{border-collapse:collapse;font-size:13px}\
         td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,td:nth-child(2){text-align:left}\
         svg{display:block;margin:.5em 0;overflow:visible}.grid{display:flex;flex-wrap:wrap;gap:8px}\
         .rec{background:#ecfdf5;border-left:4px solid #10b981;padding:.6em 1em}.note{color:#555;font-size:13px}\
         .warn{background:#fffbeb;border-left:4px solid #f59e0b;padding:.4em 1em;font-size:13px}td.why{text-align:left;max-width:60em}</style>\n</head>\n<body>\n",
    );
    let _ = writeln!(
        h,
        "<h1>cache-sim: {}</h1>\n<p>{}</p>",
        esc(&report.scenario),
        esc(&report.caption()),
    );
    if let Some(rec) = &report.recommendation {
        h.push_str(&super::verdict::html(rec));
    }
    table(&mut h, report);
    db_faults(&mut h, report);
    h.push_str(&super::verdict::evictions_html(report));
    if !report.stale_judged {
        h.push_str("<p class=\"note\">Stale reads are n/a: an access log has no database to judge them by; at-risk reads count hits from an entry filled before a write to one of the feed's scopes.</p>\n");
    }
    stale_over_time(&mut h, report, &labels);
    hit_rate_vs_memory(&mut h, report);
    latency(&mut h, report, &labels);
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let values = |f: fn(&CellResult) -> f64| report.results.iter().map(f).collect::<Vec<_>>();
    bar_chart(
        &mut h,
        "chart-hit-rate",
        "Hit rate",
        "hit rate (share of feed reads served from the cache)",
        &labels,
        &values(|r| r.hit_rate),
        &pct,
        "#3b82f6",
    );
    bar_chart(
        &mut h,
        "chart-stale-rate",
        "Stale-read rate",
        "stale reads (share of feed reads)",
        &labels,
        &values(|r| r.stale_rate),
        &|v| format!("{:.2}%", v * 100.0),
        "#ef4444",
    );
    bar_chart(
        &mut h,
        "chart-ops-per-write",
        "Backend ops per write",
        "backend round trips per write",
        &labels,
        &values(|r| r.ops_per_write),
        &|v| format!("{v:.2}"),
        "#10b981",
    );
    h.push_str("</body>\n</html>\n");
    h
}

fn table(h: &mut String, report: &Report) {
    h.push_str("<table>\n<tr><th>strategy</th><th>backend</th><th>reads</th><th>hits</th><th>hit rate</th><th>stale reads</th><th>at-risk reads</th><th>max staleness ms</th><th>ops/read</th><th>ops/write</th><th>DB queries</th><th>coalesced</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>errors</th><th>dead keys</th></tr>\n");
    for r in &report.results {
        let stale = if report.stale_judged {
            super::markdown::stale_cell(r)
        } else {
            "n/a".into()
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{stale}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.strategy),
            esc(&r.backend),
            r.reads,
            r.hits,
            r.hit_rate * 100.0,
            r.at_risk_reads,
            r.max_staleness_ms,
            r.ops_per_read,
            r.ops_per_write,
            r.db_queries,
            r.coalesced,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.latency_p999_ms,
            r.errors,
            r.dead_keys.map(|d| d.to_string()).unwrap_or_else(|| "n/a".into())
        );
    }
    h.push_str("</table>\n");
}

/// The database-faults table, for runs with database faults, fail-safe
/// or timeouts.
fn db_faults(h: &mut String, report: &Report) {
    if report.db_faults.is_none() {
        return;
    }
    h.push_str("<section id=\"db-faults\"><h2>Database faults and fail-safe</h2>\n<p class=\"note\">Fail-safe answers are counted apart from stale reads; fail-safe stale are those the database's truth judges stale.</p>\n<table>\n<tr><th>strategy</th><th>backend</th><th>fail-safe answers</th><th>old stamps</th><th>fail-safe stale</th><th>errors returned</th><th>loads failed</th><th>loads timed out</th><th>soft timeouts</th><th>reads in fault</th><th>p99 ms in fault</th></tr>\n");
    for r in &report.results {
        let Some(d) = &r.db_faults else { continue };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            esc(&r.strategy),
            esc(&r.backend),
            d.fail_safe_served,
            d.fail_safe_old_stamps,
            d.fail_safe_stale,
            d.failed_reads,
            d.loads_failed,
            d.load_timeouts,
            d.soft_timeouts,
            d.reads_in_fault,
            d.latency_in_fault_p99_ms,
        );
    }
    h.push_str("</table></section>\n");
}

/// Horizontal bars, one per row, with an x-axis title.
#[allow(clippy::too_many_arguments)] // one call per chart; a struct would only rename them
fn bar_chart(
    h: &mut String,
    id: &str,
    title: &str,
    axis: &str,
    labels: &[String],
    values: &[f64],
    fmt: &dyn Fn(f64) -> String,
    color: &str,
) {
    let row = 22.0;
    let left = 12.0 + labels.iter().map(|l| text_px(l)).fold(0.0, f64::max);
    let width = 480.0;
    let value_px = 12.0 + values.iter().map(|v| text_px(&fmt(*v))).fold(0.0, f64::max);
    let top = 6.0;
    let height = top + row * values.len() as f64 + 36.0;
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let _ = writeln!(
        h,
        "<section id=\"{id}\"><h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{height:.0}\" font-size=\"12\">",
        esc(title),
        left + width + value_px
    );
    for (i, (l, &v)) in labels.iter().zip(values).enumerate() {
        let y = top + row * i as f64;
        let w = if max > 0.0 { v / max * width } else { 0.0 };
        let _ = writeln!(
            h,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text><rect x=\"{left:.0}\" y=\"{:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(l),
            y + 2.0,
            row - 6.0,
            left + w + 4.0,
            y + 14.0,
            esc(&fmt(v))
        );
    }
    let axis_y = top + row * values.len() as f64 + 4.0;
    let _ = writeln!(
        h,
        "<line x1=\"{left:.0}\" y1=\"{axis_y:.0}\" x2=\"{:.0}\" y2=\"{axis_y:.0}\" stroke=\"#999\"/><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#333\">{}</text>\n</svg></section>",
        left + width,
        left + width / 2.0,
        axis_y + 22.0,
        esc(axis)
    );
}

/// A tick step for a span of `span_s` seconds: at most about five ticks.
fn tick_step(span_s: i64) -> i64 {
    const STEPS: [i64; 12] = [
        60,
        300,
        900,
        3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        86_400,
        2 * 86_400,
        7 * 86_400,
        30 * 86_400,
        365 * 86_400,
    ];
    STEPS.iter().copied().find(|s| span_s / s <= 5).unwrap_or(365 * 86_400)
}

/// Cumulative stale reads over time, one small chart per cell, on a shared
/// date axis and a shared y scale (so the charts compare at a glance).
fn stale_over_time(h: &mut String, report: &Report, labels: &[String]) {
    let start = DateTime::parse_from_rfc3339(&report.start)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let bucket = report.bucket_s as i64;
    let end_s = report
        .results
        .iter()
        .filter_map(|r| r.timeline.last().map(|b| b[0] as i64 + bucket))
        .max()
        .unwrap_or(bucket)
        .max(60);
    let total_max = report.results.iter().map(|r| r.stale_reads).max().unwrap_or(0).max(1) as f64;
    let _ = writeln!(
        h,
        "<section id=\"chart-stale-over-time\"><h2>Cumulative stale reads over time</h2>\n<p class=\"note\">One chart per cell, same scales; time in UTC from the trace's start ({}).{}</p>\n<div class=\"grid\">",
        esc(&report.start),
        if report.stale_judged { "" } else { " Stale reads are not judged for an access log: every chart is flat." }
    );
    let (w, ht, left, right, top, bottom) = (340.0, 170.0, 52.0, 16.0, 24.0, 44.0);
    let pw = w - left - right;
    let ph = ht - top - bottom;
    let step = tick_step(end_s);
    let fmt = if step >= 86_400 { "%b %d" } else { "%b %d %H:%M" };
    let x = |s: i64| left + s as f64 / end_s as f64 * pw;
    for (i, (r, label)) in report.results.iter().zip(labels).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let _ = writeln!(
            h,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" font-size=\"11\"><text x=\"{left}\" y=\"14\" font-size=\"12\" font-weight=\"bold\">{} — {} stale</text>",
            esc(label),
            r.stale_reads
        );
        // Axes, y ticks (0 and the shared max), x ticks at round instants.
        let (y0, y1) = (top + ph, top);
        let _ = write!(
            h,
            "<line x1=\"{left}\" y1=\"{y0}\" x2=\"{:.0}\" y2=\"{y0}\" stroke=\"#999\"/><line x1=\"{left}\" y1=\"{y1}\" x2=\"{left}\" y2=\"{y0}\" stroke=\"#999\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">0</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{total_max:.0}</text>",
            left + pw,
            left - 4.0,
            y0 + 4.0,
            left - 4.0,
            y1 + 8.0
        );
        let first_tick = (start.timestamp() + step - 1).div_euclid(step) * step - start.timestamp();
        let mut t = first_tick;
        while t <= end_s {
            let label = (start + Span::seconds(t)).format(fmt).to_string();
            let _ = write!(
                h,
                "<line x1=\"{0:.1}\" y1=\"{y0}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#999\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\" font-size=\"9\">{3}</text>",
                x(t),
                y0 + 4.0,
                y0 + 14.0,
                esc(&label)
            );
            t += step;
        }
        let _ = write!(
            h,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#333\">time (UTC)</text>\
             <text transform=\"translate(12,{:.0}) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">cum. stale reads</text>",
            left + pw / 2.0,
            ht - 6.0,
            top + ph / 2.0
        );
        // A step line of the running total.
        let mut pts = vec![format!("{left:.1},{y0:.1}")];
        let mut total = 0u64;
        for b in &r.timeline {
            let xs = x(b[0] as i64);
            let before = top + ph - total as f64 / total_max * ph;
            total += b[2];
            let after = top + ph - total as f64 / total_max * ph;
            if b[2] > 0 {
                pts.push(format!("{xs:.1},{before:.1} {xs:.1},{after:.1}"));
            }
        }
        let end_y = top + ph - total as f64 / total_max * ph;
        pts.push(format!("{:.1},{end_y:.1}", left + pw));
        let _ = writeln!(
            h,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.8\" points=\"{}\"/></svg>",
            pts.join(" ")
        );
    }
    h.push_str("</div></section>\n");
}

/// MiB of a `locmem:64MiB` label (`locmem` is the default capacity).
fn locmem_mib(label: &str) -> Option<u64> {
    if label == "locmem" {
        return Some(backend_locmem::DEFAULT_CAPACITY_BYTES >> 20);
    }
    label.strip_prefix("locmem:")?.strip_suffix("MiB")?.parse().ok()
}

/// Hit rate against memory per process, one line per strategy, when the
/// run compared at least two locmem sizes (`--backend locmem:16,64,256`).
fn hit_rate_vs_memory(h: &mut String, report: &Report) {
    let mut sizes: Vec<u64> = report.backends.iter().filter_map(|b| locmem_mib(b)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.len() < 2 {
        return;
    }
    let (w, ht, left, right, top, bottom) = (640.0, 300.0, 60.0, 20.0, 14.0, 46.0);
    let pw = w - left - right;
    let ph = ht - top - bottom;
    let lg = |mib: u64| (mib.max(1) as f64).log2();
    let (lo, hi) = (lg(sizes[0]), lg(sizes[sizes.len() - 1]));
    let x = |mib: u64| left + (lg(mib) - lo) / (hi - lo).max(1e-9) * pw;
    let y = |rate: f64| top + ph - rate * ph;
    let _ = writeln!(
        h,
        "<section id=\"chart-hit-rate-vs-memory\"><h2>Hit rate against memory</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" font-size=\"11\">"
    );
    let _ = write!(
        h,
        "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#999\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{0}\" stroke=\"#999\"/>",
        top + ph,
        left + pw
    );
    for pct in [0u32, 25, 50, 75, 100] {
        let yy = y(f64::from(pct) / 100.0);
        let _ = write!(
            h,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.0}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{pct}%</text>",
            left + pw,
            left - 4.0,
            yy + 4.0
        );
    }
    for &s in &sizes {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{s}</text>",
            x(s),
            top + ph + 14.0
        );
    }
    let _ = write!(
        h,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#333\">memory per process, MiB (log scale)</text>\
         <text transform=\"translate(14,{:.0}) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">hit rate</text>",
        left + pw / 2.0,
        ht - 8.0,
        top + ph / 2.0
    );
    let mut legend = String::new();
    for (i, strategy) in report.strategies.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<(u64, f64)> = report
            .results
            .iter()
            .filter(|r| &r.strategy == strategy)
            .filter_map(|r| locmem_mib(&r.backend).map(|m| (m, r.hit_rate)))
            .collect();
        pts.sort_by_key(|p| p.0);
        let line: Vec<String> = pts.iter().map(|&(m, r)| format!("{:.1},{:.1}", x(m), y(r))).collect();
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        for &(m, r) in &pts {
            let _ = write!(
                h,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                x(m),
                y(r)
            );
        }
        let _ = write!(
            legend,
            "<span style=\"color:{color}\">&#9632;</span> {} &#160; ",
            esc(strategy)
        );
    }
    let _ = writeln!(h, "</svg>\n<p class=\"note\">{legend}</p></section>");
}

/// A bar series: name, colour, value.
type Series = (&'static str, &'static str, fn(&CellResult) -> f64);

/// Feed latency of hits and of misses apart, grouped bars per row: with a
/// hit rate under 50% the overall p50 and p99 are both a miss's and show
/// nothing of what a hit costs (the table keeps the overall percentiles).
fn latency(h: &mut String, report: &Report, labels: &[String]) {
    let series: [Series; 4] = [
        ("hit p50", "#86efac", |r| r.latency_hit_p50_ms),
        ("hit p99", "#16a34a", |r| r.latency_hit_p99_ms),
        ("miss p50", "#fdba74", |r| r.latency_miss_p50_ms),
        ("miss p99", "#ea580c", |r| r.latency_miss_p99_ms),
    ];
    let bar = 7.0;
    let row = bar * series.len() as f64 + 8.0;
    let left = 12.0 + labels.iter().map(|l| text_px(l)).fold(0.0, f64::max);
    let width = 460.0;
    let max = report
        .results
        .iter()
        .flat_map(|r| series.iter().map(move |(_, _, f)| f(r)))
        .fold(0.0, f64::max);
    let value_px = 12.0 + text_px(&format!("{max:.1} ms miss p99 (100.0% of reads)"));
    let top = 4.0;
    let height = top + row * labels.len() as f64 + 40.0;
    let legend: String = series
        .iter()
        .map(|(name, color, _)| format!("<span style=\"color:{color}\">&#9632;</span> {name}"))
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(
        h,
        "<section id=\"chart-latency\"><h2>Feed latency: hits and misses</h2>\n<p class=\"note\">Virtual time: the modelled latencies of the steps each request took; \
         misses are every read not served from the cache (its own load, a coalesced wait, a bypass, fail-open). \
         Overall p50 / p99 / p99.9 are in the table. {legend}</p>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{height:.0}\" font-size=\"11\">",
        left + width + value_px
    );
    for (i, (r, l)) in report.results.iter().zip(labels).enumerate() {
        let y = top + row * i as f64;
        let _ = write!(
            h,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\" font-size=\"12\">{}</text>",
            left - 6.0,
            y + bar * 2.0,
            esc(l)
        );
        for (k, (name, color, f)) in series.iter().enumerate() {
            let v = f(r);
            let w = if max > 0.0 { v / max * width } else { 0.0 };
            let yy = y + bar * k as f64;
            // The share of reads each half stands for, on its p50 bar.
            let share = match k {
                0 => format!(" ({:.1}% of reads)", r.hit_rate * 100.0),
                2 => format!(" ({:.1}% of reads)", (1.0 - r.hit_rate) * 100.0),
                _ => String::new(),
            };
            let _ = write!(
                h,
                "<rect x=\"{left:.0}\" y=\"{yy:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8\">{v:.1} ms {name}{share}</text>",
                bar - 1.0,
                left + w + 3.0,
                yy + bar - 1.0
            );
        }
        h.push('\n');
    }
    let axis_y = top + row * labels.len() as f64 + 4.0;
    let _ = writeln!(
        h,
        "<line x1=\"{left:.0}\" y1=\"{axis_y:.0}\" x2=\"{:.0}\" y2=\"{axis_y:.0}\" stroke=\"#999\"/><text x=\"{left:.0}\" y=\"{:.0}\" text-anchor=\"middle\">0</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{max:.1}</text>\
         <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#333\">feed latency, ms (virtual time)</text>\n</svg></section>",
        left + width,
        axis_y + 14.0,
        left + width,
        axis_y + 14.0,
        left + width / 2.0,
        axis_y + 32.0
    );
}
