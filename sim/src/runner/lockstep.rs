//! Cells that share one trace: the events are generated (or read) and
//! their views interned once, in chunks, and every cell of the group
//! replays each chunk, taking turns on the worker threads.
//!
//! Why: every cell replays the same trace, and generating it and interning
//! its views again per cell was about a quarter of a cell's cost. The
//! chunks in memory are bounded ([`DEPTH`] of [`CHUNK`] events), so memory
//! stays independent of the trace's length; the price is that every cell
//! of a group holds its stores at once (see `group_size` in `mod.rs`).
//!
//! Results do not depend on the turns: each cell replays the same inputs
//! in the same order in its own runtime, whichever thread runs it.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::{Chunk, Inputs, Part};
use crate::error::{Error, Result};

/// Events per chunk: enough that a turn (a cell replaying a chunk, some
/// milliseconds) dwarfs the switch between cells.
const CHUNK: usize = 8192;
/// Chunks held at once: the slowest cell of a group is at most this far
/// behind the source, the fastest at most this far ahead of the slowest.
const DEPTH: usize = 4;

/// A cell of a group, replaying on its own runtime.
pub(super) trait Task: Send {
    /// Replays `chunk`'s inputs.
    fn feed(&mut self, chunk: &Chunk, progress: Option<&AtomicU64>) -> Result<()>;
    /// Ends the replay after the last chunk.
    fn finish(self: Box<Self>, progress: Option<&AtomicU64>) -> Result<Part>;
}

/// Why a cell of a group stopped short.
#[derive(Debug)]
pub(super) enum Stop {
    /// The cell itself failed.
    Cell(Error),
    /// The shared source failed (its error is the group's, see [`Group`]).
    Source,
}

/// What [`run`] gives back.
pub(super) struct Group {
    /// Per cell: its metrics or why it stopped, and the time spent on it;
    /// `None` for cells that did not finish because another one failed.
    pub(super) cells: Vec<Option<(std::result::Result<Part, Stop>, Duration)>>,
    /// The error the source stopped with, if it did.
    pub(super) source_error: Option<Error>,
}

enum Turn {
    /// Not started yet: made by its first turn.
    New,
    Idle(Box<dyn Task>),
    Busy,
    Done,
}

struct CellSlot {
    turn: Turn,
    /// Index of the next chunk it replays.
    next: usize,
    spent: Duration,
    result: Option<std::result::Result<Part, Stop>>,
}

struct State {
    /// `None` while a worker is reading a chunk from it, and after the last.
    inputs: Option<Inputs>,
    /// Chunk `first + i` at `i`.
    chunks: VecDeque<Arc<Chunk>>,
    first: usize,
    source_error: Option<Error>,
    cells: Vec<CellSlot>,
    /// A cell failed: the run is over.
    failed: bool,
}

impl State {
    /// The cell to give a turn: the one furthest behind (so the oldest chunk
    /// can be dropped soonest) of those idle with a chunk to replay.
    fn ready_cell(&self) -> Option<usize> {
        let available = self.first + self.chunks.len();
        self.cells
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.turn, Turn::New | Turn::Idle(_)) && c.next < available)
            .min_by_key(|(i, c)| (c.next, *i))
            .map(|(i, _)| i)
    }

    /// Drops the chunks every cell has replayed.
    fn trim(&mut self) {
        let slowest = self
            .cells
            .iter()
            .filter(|c| !matches!(c.turn, Turn::Done))
            .map(|c| c.next)
            .min()
            .unwrap_or(usize::MAX);
        while self.first < slowest && !self.chunks.is_empty() {
            self.chunks.pop_front();
            self.first += 1;
        }
    }

    fn all_done(&self) -> bool {
        self.cells.iter().all(|c| matches!(c.turn, Turn::Done))
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A worker that panicked ends the scope with its panic anyway; the
    // others only need to stop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Replays `inputs` through `cells` cells on `workers` threads. `start(i)`
/// makes cell `i` (connecting its stores) on its first turn.
pub(super) fn run(
    inputs: Inputs,
    cells: usize,
    workers: usize,
    start: &(dyn Fn(usize) -> Result<Box<dyn Task>> + Sync),
    progress: Option<&AtomicU64>,
) -> Group {
    let state = Mutex::new(State {
        inputs: Some(inputs),
        chunks: VecDeque::with_capacity(DEPTH),
        first: 0,
        source_error: None,
        cells: (0..cells)
            .map(|_| CellSlot {
                turn: Turn::New,
                next: 0,
                spent: Duration::ZERO,
                result: None,
            })
            .collect(),
        failed: false,
    });
    let changed = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| work(&state, &changed, start, progress));
        }
    });
    let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
    Group {
        cells: state
            .cells
            .into_iter()
            .map(|c| c.result.map(|r| (r, c.spent)))
            .collect(),
        source_error: state.source_error,
    }
}

/// One worker: reads the next chunk while there is room for it, otherwise
/// gives a turn to the cell furthest behind, until every cell is done.
fn work(
    state: &Mutex<State>,
    changed: &Condvar,
    start: &(dyn Fn(usize) -> Result<Box<dyn Task>> + Sync),
    progress: Option<&AtomicU64>,
) {
    let mut st = lock(state);
    loop {
        if st.failed || st.all_done() {
            break;
        }
        // Reading ahead first keeps the other workers supplied.
        if st.chunks.len() < DEPTH {
            if let Some(mut inputs) = st.inputs.take() {
                drop(st);
                let (chunk, failed) = inputs.chunk(CHUNK);
                st = lock(state);
                if !chunk.last {
                    st.inputs = Some(inputs);
                }
                st.source_error = failed;
                st.chunks.push_back(Arc::new(chunk));
                changed.notify_all();
                continue;
            }
        }
        let Some(i) = st.ready_cell() else {
            st = changed.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let task = match std::mem::replace(&mut st.cells[i].turn, Turn::Busy) {
            Turn::Idle(t) => Some(t),
            _ => None,
        };
        let next = st.cells[i].next;
        let chunk = st.chunks[next - st.first].clone();
        let source_failed = st.source_error.is_some();
        drop(st);
        let began = Instant::now();
        // A panicking cell must not leave the other workers waiting for it.
        let after = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            turn(i, task, &chunk, source_failed, start, progress)
        }))
        .unwrap_or_else(|_| After::Finished(Err(Stop::Cell(Error::Invalid(format!("cell {i} panicked"))))));
        let spent = began.elapsed();
        st = lock(state);
        let cell = &mut st.cells[i];
        cell.spent += spent;
        cell.next += 1;
        match after {
            After::Idle(task) => cell.turn = Turn::Idle(task),
            After::Finished(result) => {
                if matches!(result, Err(Stop::Cell(_))) {
                    st.failed = true;
                }
                let cell = &mut st.cells[i];
                cell.turn = Turn::Done;
                cell.result = Some(result);
            }
        }
        st.trim();
        changed.notify_all();
    }
    changed.notify_all();
}

/// What a turn left: a cell to give more turns, or its outcome.
// Made once per turn and moved once: boxing the metrics would save nothing.
#[allow(clippy::large_enum_variant)]
enum After {
    Idle(Box<dyn Task>),
    Finished(std::result::Result<Part, Stop>),
}

/// Cell `i` replays `chunk` (made first if `task` is `None`), and finishes
/// after the last one.
fn turn(
    i: usize,
    task: Option<Box<dyn Task>>,
    chunk: &Chunk,
    source_failed: bool,
    start: &(dyn Fn(usize) -> Result<Box<dyn Task>> + Sync),
    progress: Option<&AtomicU64>,
) -> After {
    let mut task = match task.map_or_else(|| start(i), Ok) {
        Ok(t) => t,
        Err(e) => return After::Finished(Err(Stop::Cell(e))),
    };
    if let Err(e) = task.feed(chunk, progress) {
        return After::Finished(Err(Stop::Cell(e)));
    }
    if !chunk.last {
        After::Idle(task)
    } else if source_failed {
        After::Finished(Err(Stop::Source))
    } else {
        After::Finished(task.finish(progress).map_err(Stop::Cell))
    }
}
