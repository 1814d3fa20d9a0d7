//! What a cell replays: trace events with their views already interned
//! ([`Input`]), made once from an event source ([`Inputs`]) and read by as
//! many cells as share it.

use std::sync::Arc;

use super::views::{ViewInfo, ViewTable};
use crate::error::Error;
use crate::trace::{Event, EventIter};

/// One trace event ready for the engine: a read carries its interned view.
#[derive(Clone)]
pub(crate) enum Input {
    /// A feed request ([`Event::Read`] with its view interned).
    Read {
        /// µs after the trace start.
        t_us: u64,
        /// App process that serves it.
        process: u32,
        /// The requested view, shared by every request for it.
        view: Arc<ViewInfo>,
        /// Trace line, 0 when generated.
        line: u64,
    },
    /// Any other event, as read. Boxed: reads are most of a trace, and
    /// every cell of a group walks the same chunk of inputs, so an input
    /// the size of a read (32 bytes, not the 112 of an event) keeps that
    /// walk to a third of the memory traffic.
    Other(Box<Event>),
}

impl Input {
    /// µs after the trace start.
    pub(crate) fn t_us(&self) -> u64 {
        match self {
            Input::Read { t_us, .. } => *t_us,
            Input::Other(e) => e.t_us(),
        }
    }

    /// The trace line of the event (0 when generated).
    pub(crate) fn line(&self) -> u64 {
        match self {
            Input::Read { line, .. } => *line,
            Input::Other(e) => e.line(),
        }
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Read {
                t_us, process, view, ..
            } => f
                .debug_struct("Read")
                .field("t_us", t_us)
                .field("process", process)
                .field("view", &view.view)
                .finish_non_exhaustive(),
            Input::Other(e) => e.fmt(f),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Input>() == 32);

/// Consecutive inputs of a source.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The inputs, in trace order.
    pub(crate) inputs: Vec<Input>,
    /// The source ended (or failed) after them: no chunk follows.
    pub(crate) last: bool,
}

/// Turns an event source into [`Input`]s, interning each read's view.
pub(crate) struct Inputs {
    events: EventIter,
    views: ViewTable,
    /// The source ended or failed: it is not read again.
    ended: bool,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs").finish_non_exhaustive()
    }
}

impl Inputs {
    /// Inputs from `events`.
    pub(crate) fn new(events: EventIter) -> Self {
        Inputs {
            events,
            views: ViewTable::new(),
            ended: false,
        }
    }

    /// The next at most `max` inputs, and the error the source stopped
    /// with after them, if any (the chunk is then the last). After the last
    /// chunk the source is not read again.
    pub(crate) fn chunk(&mut self, max: usize) -> (Chunk, Option<Error>) {
        let mut inputs = Vec::with_capacity(max.min(1 << 16));
        let mut failed = None;
        while !self.ended && inputs.len() < max {
            match self.events.next() {
                None => self.ended = true,
                Some(Err(e)) => failed = Some(e),
                Some(Ok(Event::Read {
                    t_us,
                    process,
                    view,
                    line,
                    ..
                })) => match self.views.get(view) {
                    Ok(view) => inputs.push(Input::Read {
                        t_us,
                        process,
                        view,
                        line: line.0,
                    }),
                    Err(e) => failed = Some(e.at_line(line.0)),
                },
                Some(Ok(e)) => inputs.push(Input::Other(Box::new(e))),
            }
            if failed.is_some() {
                self.ended = true;
            }
        }
        let last = self.ended;
        (Chunk { inputs, last }, failed)
    }
}
