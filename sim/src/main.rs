//! `cache-sim`: the command-line front end of the simulator.
//!
//! With no arguments it runs `seed-october-2025` on locmem for every strategy
//! and prints the Markdown comparison table.
//!
//! # Layout
//!
//! - `main.rs`: the commands' dispatch and a comparison's run.
//! - `cli.rs`: the commands and options, their valid ranges, the run
//!   configuration they make.
//! - `output.rs`: the report files, the `--timings` table, the error-rate
//!   check.
//! - `progress.rs`: the progress bar.
// The binary's job is to print; the workspace lints forbid it in libraries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// jemalloc instead of the system allocator: a replay allocates and frees a
/// feed payload per miss, and glibc's malloc measured ~1.6× the CPU time.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;
use std::sync::Arc;

mod cli;
mod output;
mod progress;

use cli::{Cli, Command, Common, Format};
use output::{access_log_hint, check_errors, print_timings, write_reports};

use clap::Parser;
use sim::backends::BackendSpec;
use sim::runner::{registry, run_timed, RunConfig, SourceFactory};
use sim::scenarios::{self, SCENARIOS};
use sim::trace::{open_access_log_with, open_trace, scan_access_log, write_trace, AccessLogOptions, ScopeFrom};
use sim::traffic::Traffic;
use sim::{Error, Result};

fn compare(
    cfg: RunConfig,
    sources: SourceFactory,
    common: &Common,
    access_log: Option<sim::trace::AccessLogSummary>,
) -> Result<()> {
    let started = std::time::Instant::now();
    // With `--processes`, the bar follows this process's own cells (which
    // depend on the trace's app processes: its header, read only then).
    let own = if common.processes > 1 {
        sim::runner::own_strategies(&cfg, common.processes, sources()?.header.processes)
    } else {
        cfg.strategies.clone()
    };
    let plan = progress::Plan {
        cells: cfg
            .backends
            .iter()
            .flat_map(|b| own.iter().map(move |s| format!("{s} × {}", b.label())))
            .collect(),
        sources: sources.clone(),
        sequential: !cfg.backends.iter().all(BackendSpec::isolated_per_cell),
    };
    if let Some(worker) = sim::runner::worker_from_env()? {
        // A worker of a `--processes` run: rows to the parent, nothing else.
        return sim::runner::run_worker(&cfg, &worker, sources, &registry());
    }
    let (mut report, timings) = if common.processes > 1 {
        let exe =
            std::env::current_exe().map_err(|e| Error::Invalid(format!("--processes: where is cache-sim? {e}")))?;
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        progress::with_progress(common.quiet, plan, |p| {
            sim::runner::run_in_processes(&cfg, common.processes, &exe, &args, sources, &registry(), p)
        })?
    } else {
        progress::with_progress(common.quiet, plan, |p| run_timed(&cfg, sources, registry(), p))?
    };
    report.access_log = access_log;
    let wall = started.elapsed();
    print!("{}", report.to_markdown());
    if common.timings {
        let workers = match common.processes {
            1 => format!("{} thread(s)", cfg.threads),
            n => format!("{n} processes"),
        };
        print_timings(&timings, wall, &workers);
    }
    if let Some(dir) = &common.out {
        write_reports(dir, &report)?;
        eprintln!("wrote {}/report.{{json,csv,md,html}}", dir.display());
    }
    check_errors(&report, common.max_error_rate)
}

fn main_inner(cli: Cli) -> Result<()> {
    let command = cli.command.unwrap_or(Command::Run {
        scenario: "seed-october-2025".into(),
        common: Common::parse_default(),
    });
    match command {
        Command::Scenarios => {
            for s in SCENARIOS {
                println!(
                    "{:<22} {}",
                    s.name,
                    s.shows.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            Ok(())
        }
        Command::Run { scenario, common } => {
            scenarios::info(&scenario)?;
            let mut cfg = common.config(&scenario)?;
            // A scenario about a fault brings it (`freeze`, `writer-crash`,
            // `db-outage`).
            cfg.faults.merge(&scenarios::faults(&scenario));
            let seed = common.seed;
            let name = scenario.clone();
            compare(cfg, Arc::new(move || scenarios::source(&name, seed)), &common, None)
        }
        Command::Replay {
            file,
            format,
            routes,
            scope_from,
            strict,
            common,
        } => {
            let mut cfg = common.config("replay")?;
            cfg.trace = Some(file.display().to_string());
            let mut summary = None;
            let sources: SourceFactory = match format {
                Format::Jsonl => {
                    let f = file.clone();
                    if let Err(e) = open_trace(&f) {
                        return Err(access_log_hint(e, &f));
                    }
                    Arc::new(move || open_trace(&f))
                }
                Format::AccessLog => {
                    let mut opts = AccessLogOptions::default();
                    opts.strict = strict;
                    opts.scope_from = ScopeFrom::parse(&scope_from)?;
                    if let Some(r) = &routes {
                        opts.routes = sim::trace::routes::Routes::load(r)?;
                    }
                    summary = Some(scan_access_log(&file, &opts)?);
                    // Its items are modelled, not known: no stale judging.
                    cfg.judge_stale = false;
                    let f = file.clone();
                    Arc::new(move || open_access_log_with(&f, &opts))
                }
            };
            if let Some(s) = sources()?.header.scenario {
                cfg.scenario = format!("replay of {s}");
            }
            compare(cfg, sources, &common, summary)
        }
        Command::Generate {
            scenario,
            seed,
            out,
            actions,
            users,
            days,
            processes,
            zone_mix,
        } => {
            if scenario != "realistic" {
                let given = [
                    ("--actions", actions.is_some()),
                    ("--users", users.is_some()),
                    ("--days", days.is_some()),
                    ("--processes", processes.is_some()),
                ];
                if let Some((option, _)) = given.iter().find(|(_, g)| *g) {
                    return Err(Error::Invalid(format!(
                        "{option} applies to --scenario realistic only, not {scenario:?}"
                    )));
                }
            }
            let source = if scenario == "realistic" {
                let mut tc = scenarios::realistic_config(seed);
                if let Some(a) = actions {
                    tc.actions = a;
                }
                if let Some(u) = users {
                    tc.users = u;
                }
                if let Some(d) = days {
                    tc.days = d;
                }
                if let Some(p) = processes {
                    tc.processes = p;
                }
                if let Some(m) = zone_mix {
                    tc.zones = sim::traffic::ZoneShare::parse_mix(&m)?;
                }
                let (header, traffic) = Traffic::new(tc, &scenario)?;
                sim::trace::Source {
                    header,
                    events: Box::new(traffic),
                }
            } else {
                scenarios::source(&scenario, seed)?
            };
            let n = write_trace(&out, &source.header, source.events)?;
            eprintln!("wrote {n} events to {}", out.display());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match main_inner(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cache-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
