//! `calendar-load`: the calendar service under real load (feature `load`;
//! see `calendar_service::load` and `docs/world.md`).
// The binary's job is to print; the workspace lints forbid it in libraries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use calendar_service::load::{run, Args, LoadError, Say};

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn interrupted() -> &'static str {
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calendar-load: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let say: Say = Arc::new(|line: &str| eprintln!("{line}"));
    let out = args.out.clone();
    // The run owns every process it starts (servers, services) and stops
    // them when dropped: on an error, a panic, or here when a signal ends
    // it early.
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(args, say) => r,
            name = interrupted() => Err(LoadError::Interrupted(name)),
        }
    });
    match result {
        Ok(report) => {
            print!("{}", report.to_markdown());
            if let Some(dir) = out {
                eprintln!("wrote {0}/load.json and {0}/load.md", dir.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("calendar-load: {e}");
            ExitCode::FAILURE
        }
    }
}
