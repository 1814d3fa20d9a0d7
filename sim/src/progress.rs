//! The progress bar of `cache-sim run|replay` on stderr: events replayed out
//! of the total (every cell replays the whole trace), percent, ETA and the
//! cell being replayed. Quiet when stderr is not a terminal or with
//! `--quiet`, and for runs shorter than a second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sim::runner::SourceFactory;

/// What the bar knows about the run: the cells in run order (their labels)
/// and where to count a cell's events from.
pub(crate) struct Plan {
    /// `strategy × backend` of each cell, in the order the runner starts them.
    pub(crate) cells: Vec<String>,
    /// A fresh source, counted once on a side thread for the total.
    pub(crate) sources: SourceFactory,
    /// Whether cells run one at a time (the current cell is then exact).
    pub(crate) sequential: bool,
}

/// Runs `f` with a progress counter (or `None` when quiet) and draws the
/// bar on a ticker thread while it runs.
pub(crate) fn with_progress<T>(quiet: bool, plan: Plan, f: impl FnOnce(Option<Arc<AtomicU64>>) -> T) -> T {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return f(None);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Events per cell: counted by reading the input once, beside the run.
    let per_cell = Arc::new(AtomicU64::new(0));
    {
        let (per_cell, sources, done) = (per_cell.clone(), plan.sources.clone(), done.clone());
        std::thread::spawn(move || {
            if let Ok(src) = sources() {
                let mut n = 0u64;
                for _ in src.events {
                    n += 1;
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                }
                per_cell.store(n.max(1), Ordering::Relaxed);
            }
        });
    }
    let (c, d) = (counter.clone(), done.clone());
    let cells = plan.cells;
    let sequential = plan.sequential;
    let ticker = std::thread::spawn(move || {
        let start = Instant::now();
        let mut bar: Option<indicatif::ProgressBar> = None;
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if bar.is_none() && start.elapsed() >= Duration::from_secs(1) {
                let b = indicatif::ProgressBar::new(0);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{bar:30} {percent:>3}% {human_pos}/{human_len} events · ETA {eta} · {msg}",
                ) {
                    b.set_style(style);
                }
                b.set_message("counting events…");
                bar = Some(b);
            }
            let Some(b) = &bar else { continue };
            let pos = c.load(Ordering::Relaxed);
            let each = per_cell.load(Ordering::Relaxed);
            if each > 0 {
                b.set_length(each * cells.len() as u64);
                let i = ((pos / each) as usize).min(cells.len().saturating_sub(1));
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                b.set_message(if sequential {
                    format!("cell {}/{}: {cell}", i + 1, cells.len())
                } else {
                    format!("{} cells in parallel, ~{cell}", cells.len())
                });
            }
            b.set_position(pos);
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    });
    let out = f(Some(counter));
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    out
}
