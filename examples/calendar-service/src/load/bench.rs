//! "What the cache buys": the same requests at a fixed client concurrency
//! (closed loop) against the service with its cache off (`none`), with
//! locmem, with Redis, and with two tiers, all `stamped`. Each replay sends
//! every request of the window once (up to `--throughput-s`), so every
//! cache does the same work. Rounds alternate the order of the caches, so
//! that a noisy spell on the shared machine does not fall on one of them
//! only.

use std::time::Duration;

use super::driver::{replay, Pacing};
use super::record::quantile;
use super::report::ThroughputResult;
use super::run::{start_rig, Context};
use super::spec::RowSpec;
use super::{args::THROUGHPUT_CACHES, LoadError};

/// Runs the throughput table.
pub(crate) async fn throughput(ctx: &Context) -> Result<Vec<ThroughputResult>, LoadError> {
    let rows: Vec<RowSpec> = THROUGHPUT_CACHES
        .iter()
        .map(|c| RowSpec::parse(&format!("stamped@{c}")).map_err(LoadError::Flag))
        .collect::<Result<_, _>>()?;
    let duration = Duration::from_secs(ctx.args.throughput_s());
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); rows.len()];
    let mut hit_rates: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    let mut errors = vec![0u64; rows.len()];
    let mut feeds: Vec<Vec<u64>> = vec![Vec::new(); rows.len()];
    for round in 0..ctx.args.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..rows.len()).collect()
        } else {
            (0..rows.len()).rev().collect()
        };
        for i in order {
            let row = &rows[i];
            (ctx.say)(&format!(
                "throughput round {}/{}: stamped@{}",
                round + 1,
                ctx.args.rounds,
                row.cache.label()
            ));
            let rig = start_rig(ctx.rig.clone(), row, "stamped", format!("bench-{round}-{i}")).await?;
            let rec = replay(
                ctx.workload.clone(),
                rig.targets.clone(),
                Pacing::ClosedLoop {
                    concurrency: usize::try_from(ctx.args.concurrency).unwrap_or(1),
                    duration,
                },
                Duration::from_millis(ctx.args.timeout_ms),
                indicatif::ProgressBar::hidden(),
            )
            .await;
            let ok: Vec<u64> = rec
                .feeds
                .iter()
                .filter(|f| f.status == 200)
                .map(|f| u64::try_from(f.end_us - f.start_us).unwrap_or(0))
                .collect();
            errors[i] += rec.feeds.iter().filter(|f| f.status != 200).count() as u64;
            rps[i].push(ok.len() as f64 / (rec.wall_us as f64 / 1e6).max(1e-9));
            feeds[i].push(ok.len() as u64);
            latencies[i].extend(ok);
            hit_rates[i].push(rig.counters()?.hit_rate());
        }
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut sorted = rps[i].clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            let median = match n {
                0 => 0.0,
                n if n % 2 == 1 => sorted[n / 2],
                n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
            };
            let lat = &mut latencies[i];
            ThroughputResult {
                cache: row.cache.label().to_owned(),
                strategy: "stamped".into(),
                concurrency: ctx.args.concurrency,
                rounds_feeds: feeds[i].clone(),
                rounds_rps: rps[i].clone(),
                throughput_rps: median,
                p50_ms: ms(quantile(lat, 0.5)),
                p99_ms: ms(quantile(lat, 0.99)),
                p999_ms: ms(quantile(lat, 0.999)),
                hit_rate: hit_rates[i].iter().sum::<f64>() / hit_rates[i].len().max(1) as f64,
                errors: errors[i],
            }
        })
        .collect())
}
