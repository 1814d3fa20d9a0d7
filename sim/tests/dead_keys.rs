//! Dead keys are counted for every strategy: the strategy that stored an
//! entry opens it and says whether it would serve it now.

use std::sync::Arc;

use sim::report::{CellResult, Report};
use sim::runner::{registry, run, RunConfig};
use sim::scenarios;
use sim::trace::{Event, Source};

fn cell<'a>(r: &'a Report, strategy: &str) -> &'a CellResult {
    r.results.iter().find(|c| c.strategy == strategy).unwrap()
}

/// `seed-october-2025` up to and including the delete at 10 s: the month
/// and week views of `cal:1` were filled before it and are never read
/// again; `cal:2`'s view is untouched.
fn until_the_delete() -> Report {
    let mut cfg = RunConfig::new("seed-october-2025");
    cfg.strategies = ["versioned", "stamped", "wildcard"].map(String::from).to_vec();
    run(
        &cfg,
        Arc::new(|| {
            let src = scenarios::source("seed-october-2025", 1)?;
            let events: Vec<_> = src
                .events
                .filter(|e| e.as_ref().map_or(true, |e| e.t_us() <= 10_000_000))
                .collect();
            assert!(events.iter().any(|e| matches!(e, Ok(Event::Write { .. }))));
            Ok(Source {
                header: src.header,
                events: Box::new(events.into_iter()),
            })
        }),
        registry(),
        None,
    )
    .unwrap()
}

#[test]
fn an_orphan_and_a_stale_stamped_entry_are_both_counted() {
    let r = until_the_delete();
    // versioned: the bump moved cal:1's key; its two entries are orphans.
    let v = cell(&r, "versioned");
    assert_eq!((v.dead_keys, v.orphaned_keys), (Some(2), Some(2)));
    // stamped: the same two entries, under the keys a read still uses, but
    // stamped with the old generation: dead until refilled, not orphans.
    let s = cell(&r, "stamped");
    assert_eq!((s.dead_keys, s.orphaned_keys), (Some(2), Some(0)));
    assert!(s.dead_bytes.unwrap() > 0);
    // wildcard deleted them: nothing dead.
    assert_eq!(cell(&r, "wildcard").dead_keys, Some(0));
}

#[test]
fn a_refill_overwrites_a_dead_stamped_entry_but_not_an_orphan() {
    // The whole scenario: the month view is read again after every write,
    // the week view only after the first.
    let cfg = RunConfig::new("seed-october-2025");
    let r = run(
        &cfg,
        Arc::new(|| scenarios::source("seed-october-2025", 1)),
        registry(),
        None,
    )
    .unwrap();
    let s = cell(&r, "stamped");
    assert_eq!(
        (s.dead_keys, s.orphaned_keys),
        (Some(1), Some(0)),
        "only the week view, not read after the last two writes"
    );
    let v = cell(&r, "versioned");
    assert!(v.orphaned_keys.unwrap() > s.dead_keys.unwrap(), "{v:?}");
}
