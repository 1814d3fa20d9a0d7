//! The named scenarios: small scripted timelines that each reproduce one
//! hazard from the spec, and `realistic`, generated traffic.
//!
//! Scripted scenarios only place *events* (reads, writes, control-key
//! evictions) in time; what happens to them is up to the engine's step
//! latencies (defaults: plan 0.3 ms, get 0.3 ms, DB 8 ms, store 0.3 ms,
//! invalidation 1 ms after commit). The timings below are chosen against
//! those defaults and say so where it matters.
//!
//! # Layout
//!
//! - this module: the list ([`SCENARIOS`]), the fault scenarios (freeze,
//!   writer crash, database outage, several processes with two tiers), the
//!   script builder, and `realistic`;
//! - `scripts`: the hazard scripts (`seed-october-2025`, the races, the
//!   time zones, …) and `stampede`.

use cache_core::{Scope, View};
use chrono::{DateTime, NaiveDate, Utc};

use crate::calendar::{feed_range, visible_range, CalendarView, ViewOptions, WireFormat};
use crate::config::{Faults, Freeze};
use crate::db::{ItemState, Write, WriteKind};
use crate::error::{Error, Result};
use crate::trace::{Event, Header, LineNo, Source};
use crate::traffic::{Traffic, TrafficConfig};

mod scripts;

use scripts::script;

/// A scenario's name and what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScenarioInfo {
    /// The name used on the command line.
    pub name: &'static str,
    /// What it does and which outcome it demonstrates.
    pub shows: &'static str,
}

/// Every scenario, in listing order.
pub const SCENARIOS: [ScenarioInfo; 14] = [
    ScenarioInfo {
        name: "seed-october-2025",
        shows: "The incident: a user views October 2025 (firstDay=1, +08:00, range 2025-09-29..2025-11-10), \
                deletes an item, refreshes. fixed-month deletes Oct 1-31 keys that were never requested and \
                serves the deleted item (stale > 0); versioned serves none.",
    },
    ScenarioInfo {
        name: "stale-set-race",
        shows: "A reader misses and queries the DB (8 ms); meanwhile a delete commits and is invalidated; the \
                reader then fills the cache with the pre-delete result. Delete-based strategies (wildcard, \
                range-expansion, fixed-month) keep serving it until the TTL; versioned/bucketed fill an \
                orphaned generation instead.",
    },
    ScenarioInfo {
        name: "version-eviction",
        shows: "The version key is evicted while data keys survive. naive-versioned restarts at 0 and serves \
                the old v0 entry again (stale > 0); versioned reseeds with a value that cannot recur (stale = 0).",
    },
    ScenarioInfo {
        name: "shared-calendar",
        shows: "One writer, six viewers of a team calendar, with different firstDay, offsets and filters. An \
                invalidation must name the item's calendar, not the writer: versioned stale = 0.",
    },
    ScenarioInfo {
        name: "multi-process-locmem",
        shows: "Three app processes behind a load balancer. With an in-process store per process, a write \
                invalidates only its own process: every invalidating strategy serves stale reads on locmem, \
                and none do on a shared store (Redis, Memcached).",
    },
    ScenarioInfo {
        name: "timezone-variants",
        shows: "The same October window requested as +08:00, as Z with timeZone=UTC, and without offset with \
                timeZone=Asia/Manila: three keys (lower hit rate), and range-expansion's guessed keys miss \
                the variants it did not guess. Daylight saving: a second calendar viewed from New York and \
                Berlin browsers (month grids whose ends carry different offsets, the week of the change) and \
                with timeZone=America/New_York gets a write in the month of the change; range-expansion, \
                guessing midnights in one fixed home offset, misses all of them.",
    },
    ScenarioInfo {
        name: "item-moved",
        shows: "An edit drags an item from 2025-10-15 to 2025-12-10 while both months are cached. Strategies \
                that invalidate only the new dates leave October stale; bucketed must bump old and new buckets.",
    },
    ScenarioInfo {
        name: SERVER_EVICTION,
        shows: "A server under memory pressure evicts what was touched least: a feed over a personal and a \
                team calendar is cached and read, then the strategies' control keys (wildcard's key indexes, \
                the generations) are evicted while the entry survives, and a team item is deleted. wildcard \
                cannot find the entry (it sits under the personal calendar's prefix, listed only in the lost \
                index) and serves it stale until its TTL; versioned, bucketed and stamped make a new \
                generation (a miss), never an old entry.",
    },
    ScenarioInfo {
        name: STAMPEDE,
        shows: "A popular team calendar view expires (TTL 300 s) under steady traffic from 4 app processes \
                (one read per ms each), and 400 more readers arrive within 2 ms of expiry. Without \
                single-flight (--single-flight off) nearly every reader at expiry queries the DB; with it \
                (the default) at most one per process does and the rest wait for it; with XFetch \
                (--xfetch 1) a reader refreshes the entry before it expires and p99 latency falls.",
    },
    ScenarioInfo {
        name: "realistic",
        shows: "Generated traffic: 300 users (Zipf activity), 20 team calendars, a simulated week, month/week/ \
                day/list views, prev/next/today, filters, lazyFetching, writes with refetch; browsers in 11 zones \
                (7 with daylight saving), timeZone=UTC and named zones (`generate --zone-mix`). Hit rate and \
                cost at scale; the speed benchmark's workload.",
    },
    ScenarioInfo {
        name: TWO_TIER,
        shows: "Three app processes each read one month view every 100 ms for 10 s, a delete commits on process \
                0, processes 1 and 2 probe 0.5/1.5/2.5/3.5/5 ms after the commit, then 15 s more reads; in \
                them process 1's tracking connection or backplane subscription drops and comes back (21 s), \
                then process 0 deletes again (22 s, probed alike) with its first backplane notice lost, and \
                writes another calendar (22.2 s). With stamped: per-process locmem serves stale reads for ever; \
                a shared L2 (shared-locmem) and two-tier without backplane (two-tier:locmem+<L2>) serve none \
                (with --fence off: only inside the commit-to-bump window, the 0.5 ms probes), two-tier \
                reading < 5% of the L2-only bytes; with a backplane (two-tier/backplane=<µs>:…) until the \
                fence's notice arrives, bounded by the delivery latency + the read's own plan step; the lost \
                notice is caught by its number at process 0's next one (the end of the write; with --fence \
                off the other calendar's write, 200 ms later); with tracking (two-tier/tracking[=<µs>]:…) \
                until the server's invalidation arrives, with no round trip per L1 hit in between.",
    },
    ScenarioInfo {
        name: FREEZE,
        shows: "The cache server freezes for 5 s (10 s to 15 s: it keeps its data, every call fails) while three \
                processes read a month view every 20 ms and process 0 deletes an item (12 s) and edits another \
                (13 s). Both bumps fail and are queued in process 0, which reads around them; its retries fail \
                until the thaw, and the first round after it applies both. The other processes are served the \
                old entry from the thaw until that round: every invalidating strategy's last stale read comes \
                at most --bump-retry-max-ms (100 ms) after the thaw, and none during the freeze (fail-open).",
    },
    ScenarioInfo {
        name: WRITER_CRASH,
        shows: "Process 0 deletes an item at 5 s and crashes between the commit and the bump, while three \
                processes read a month view every 100 ms for 20 s. With the outbox (--outbox on, the default) a \
                relay applies the change at its first poll once the row is --outbox-grace-ms (5 s) old: \
                versioned/bucketed/wildcard serve the deleted item until then, stamped none (its open fence \
                keeps every process off the scope). With --outbox off the bump is lost: the others serve it to \
                the end, stamped stays uncached to the end.",
    },
    ScenarioInfo {
        name: DB_OUTAGE,
        shows: "The database fails for feed queries from 120 s to 420 s while two processes read four month views \
                (four calendars) every 10 s. Before it: views 1-3 are cached at 1 s, a write to calendar 2 at 30 s \
                is refilled at 31 s, a delete in calendar 3 at 60 s is not; view 4 is first read in the outage. \
                Without fail-safe every read that reaches the database fails (errors = loads failed). With \
                --fail-safe 600, stamped answers views 1-2 from their expired entries (current) and view 3 from \
                its old-stamped one (stale, counted as fail-safe stale, not as stale reads): errors only for view \
                4; versioned and bucketed lose view 3's entry at the bump and wildcard deletes it (errors), \
                short-ttl serves stale ones as current.",
    },
];

/// The scenario of a server that evicts (see its entry in [`SCENARIOS`]).
pub const SERVER_EVICTION: &str = "server-eviction";
/// The `freeze` scenario's name.
pub const FREEZE: &str = "freeze";
/// When `freeze`'s freeze starts, µs after the start.
pub const FREEZE_AT_US: u64 = 10_000_000;
/// How long it lasts, µs.
pub const FREEZE_FOR_US: u64 = 5_000_000;
/// The `writer-crash` scenario's name.
pub const WRITER_CRASH: &str = "writer-crash";
/// When `writer-crash`'s write commits (and its writer dies), µs.
pub const WRITER_CRASH_AT_US: u64 = 5_000_000;

/// The `db-outage` scenario's name.
pub const DB_OUTAGE: &str = "db-outage";
/// When `db-outage`'s database outage starts, µs after the start.
pub const DB_OUTAGE_AT_US: u64 = 120_000_000;
/// How long it lasts, µs.
pub const DB_OUTAGE_FOR_US: u64 = 300_000_000;

/// The faults scenario `name` is about (none for most): a scenario's run
/// injects them on top of the command line's.
pub fn faults(name: &str) -> Faults {
    let mut f = Faults::none();
    match name {
        FREEZE => f.freezes.push(Freeze {
            start_us: FREEZE_AT_US,
            end_us: FREEZE_AT_US + FREEZE_FOR_US,
        }),
        WRITER_CRASH => f.crash_writer_at_us = Some(WRITER_CRASH_AT_US),
        DB_OUTAGE => f.db.push(crate::config::DbFault {
            start_us: DB_OUTAGE_AT_US,
            end_us: DB_OUTAGE_AT_US + DB_OUTAGE_FOR_US,
            kind: crate::config::DbFaultKind::Outage,
        }),
        TWO_TIER => {
            use crate::config::{TierFault, TierFaultKind};
            f.tier = vec![
                TierFault::new(TWO_TIER_DISCONNECT_US, 1, TierFaultKind::Disconnect),
                TierFault::new(TWO_TIER_SECOND_COMMIT_US - 1_000, 0, TierFaultKind::LoseNotice),
            ];
        }
        _ => {}
    }
    f
}

/// The `--backend`s scenario `name` runs on when none is given: `locmem`
/// (one store per process), `shared-locmem` for the scenarios about a
/// store the processes share (on per-process stores a write never reaches
/// the others, and `multi-process-locmem` is all they would show), and
/// [`TWO_TIER_BACKENDS`] side by side for `multi-process-two-tier`.
pub fn default_backends(name: &str) -> &'static [&'static str] {
    match name {
        FREEZE | WRITER_CRASH | DB_OUTAGE => &["shared-locmem"],
        TWO_TIER => &TWO_TIER_BACKENDS,
        _ => &["locmem"],
    }
}

/// See [`FREEZE`]'s entry in [`SCENARIOS`].
fn freeze() -> Result<Script> {
    let mut s = Script::new(3);
    s.load_month("cal:1", 1, 15)?;
    let oct = view(&["cal:1"], CalendarView::DayGridMonth, date(2025, 10, 6)?, 1, &PH)?;
    for p in 0..3u32 {
        for i in 0..1_000u64 {
            s.read_us(u64::from(p) * 5_000 + i * 20_000, p, u64::from(p) + 1, &oct);
        }
    }
    s.write_us(
        5_000_000,
        0,
        WriteKind::Edit,
        4,
        "cal:1",
        Some(item_at(date(2025, 10, 9)?, 9, 0, 0)),
    );
    s.write_us(12_000_000, 0, WriteKind::Delete, 3, "cal:1", None);
    s.write_us(
        13_000_000,
        0,
        WriteKind::Edit,
        5,
        "cal:1",
        Some(item_at(date(2025, 10, 22)?, 9, 0, 0)),
    );
    s.write_us(17_000_000, 0, WriteKind::Delete, 6, "cal:1", None);
    Ok(s)
}

/// See [`DB_OUTAGE`]'s entry in [`SCENARIOS`]. With the default TTL
/// (300 s) the entries filled at 1 s expire at ~301 s, the one refilled at
/// 31 s at ~331 s, inside the outage; [`db_outage_reads`] lists the reads.
fn db_outage() -> Result<Script> {
    let mut s = Script::new(2);
    let views = db_outage_views()?;
    for (i, cal) in ["cal:1", "cal:2", "cal:3", "cal:4"].iter().enumerate() {
        s.load_month(cal, 100 * i as u64 + 1, 10)?;
    }
    for (t_ms, process, view) in db_outage_reads() {
        s.read(t_ms, process, 1 + view as u64, &views[view]);
    }
    // Calendar 2 changes and is refilled; calendar 3 changes and is not.
    s.write(
        30_000,
        WriteKind::Edit,
        102,
        "cal:2",
        Some(item_at(date(2025, 10, 20)?, 15, 0, 0)),
    );
    s.write(60_000, WriteKind::Delete, 203, "cal:3", None);
    Ok(s)
}

/// `db-outage`'s four views: the October month grid of `cal:1` .. `cal:4`.
fn db_outage_views() -> Result<Vec<View>> {
    ["cal:1", "cal:2", "cal:3", "cal:4"]
        .iter()
        .map(|c| view(&[c], CalendarView::DayGridMonth, date(2025, 10, 6)?, 1, &PH))
        .collect()
}

/// `db-outage`'s reads: (ms after the start, process, view index 0..4).
/// Views 0-2 at 1 s, view 1 again at 31 s (after its calendar's write);
/// then from 125 s to 415 s every 10 s process 0 reads views 0 and 2 and
/// process 1 views 1 and 3, a second apart; then all four at 425 s and
/// 435 s, after the outage.
pub fn db_outage_reads() -> Vec<(u64, u32, usize)> {
    let mut reads = vec![(1_000, 0, 0), (1_100, 0, 1), (1_200, 0, 2), (31_000, 1, 1)];
    let mut t = 125_000;
    while t <= 435_000 {
        reads.extend([(t, 0, 0), (t + 1_000, 1, 1), (t + 2_000, 0, 2), (t + 3_000, 1, 3)]);
        t += 10_000;
    }
    reads
}

/// See [`WRITER_CRASH`]'s entry in [`SCENARIOS`].
fn writer_crash() -> Result<Script> {
    let mut s = Script::new(3);
    s.load_month("cal:1", 1, 15)?;
    let oct = view(&["cal:1"], CalendarView::DayGridMonth, date(2025, 10, 6)?, 1, &PH)?;
    for p in 0..3u32 {
        for i in 0..200u64 {
            s.read_us(u64::from(p) * 10_000 + i * 100_000, p, u64::from(p) + 1, &oct);
        }
    }
    s.write_us(WRITER_CRASH_AT_US, 0, WriteKind::Delete, 3, "cal:1", None);
    Ok(s)
}

/// The two-tier scenario's name.
pub const TWO_TIER: &str = "multi-process-two-tier";
/// When `multi-process-two-tier`'s write commits, µs from the start.
pub const TWO_TIER_COMMIT_US: u64 = 10_000_000;
/// When its probes read, µs after the commit (of each delete).
pub const TWO_TIER_PROBES_US: [u64; 5] = [500, 1_500, 2_500, 3_500, 5_000];
/// When process 1's tracking connection (or subscription) drops and comes
/// back, µs from the start (a fault the scenario brings:
/// [`faults`]).
pub const TWO_TIER_DISCONNECT_US: u64 = 21_000_000;
/// When the second delete commits, µs from the start; process 0's first
/// backplane notice of it is lost (the fault is set 1 ms before, since
/// trace events go before faults at the same instant).
pub const TWO_TIER_SECOND_COMMIT_US: u64 = 22_000_000;
/// When process 0 writes another calendar, µs from the start: its next
/// notice after the lost one.
pub const TWO_TIER_OTHER_WRITE_US: u64 = 22_200_000;

/// See [`TWO_TIER`]'s entry in [`SCENARIOS`].
fn multi_process_two_tier() -> Result<Script> {
    let mut s = Script::new(3);
    s.load_month("cal:1", 1, 15)?;
    s.load_month("cal:2", 101, 1)?;
    let oct = view(&["cal:1"], CalendarView::DayGridMonth, date(2025, 10, 6)?, 1, &PH)?;
    for p in 0..3u32 {
        let offset = u64::from(p) * 10_000;
        // Steady reads before the write and after the probes.
        for i in 0..100u64 {
            s.read_us(offset + i * 100_000, p, u64::from(p) + 1, &oct);
        }
        for i in 0..150u64 {
            s.read_us(
                TWO_TIER_COMMIT_US + 50_000 + offset + i * 100_000,
                p,
                u64::from(p) + 1,
                &oct,
            );
        }
    }
    for (commit, item) in [(TWO_TIER_COMMIT_US, 3), (TWO_TIER_SECOND_COMMIT_US, 4)] {
        s.write_us(commit, 0, WriteKind::Delete, item, "cal:1", None);
        for d in TWO_TIER_PROBES_US {
            for p in 1..3u32 {
                s.read_us(commit + d, p, 10 + u64::from(p), &oct);
            }
        }
    }
    let moved = item_at(date(2025, 10, 20)?, 10, 0, 0);
    s.write_us(TWO_TIER_OTHER_WRITE_US, 0, WriteKind::Edit, 101, "cal:2", Some(moved));
    Ok(s)
}

/// What `multi-process-two-tier` compares when no backend is given: each
/// process its own store, one shared store, two tiers, two tiers with a
/// backplane (2 ms delivery), two tiers with tracking (the default
/// delivery, [`DEFAULT_TRACKING_US`](crate::backends::DEFAULT_TRACKING_US)).
pub const TWO_TIER_BACKENDS: [&str; 5] = [
    "locmem",
    "shared-locmem",
    "two-tier:locmem+locmem",
    "two-tier/backplane=2000:locmem+locmem",
    "two-tier/tracking:locmem+locmem",
];

/// The scenario called `name`.
pub fn info(name: &str) -> Result<ScenarioInfo> {
    SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .copied()
        .ok_or_else(|| Error::UnknownScenario(name.to_owned()))
}

/// The traffic `realistic` generates for `seed`.
pub fn realistic_config(seed: u64) -> TrafficConfig {
    TrafficConfig {
        seed,
        ..TrafficConfig::default()
    }
}

/// The event source of generated traffic with `config` (what `realistic`
/// is with its own configuration), named `scenario` in its header.
pub fn generated(config: TrafficConfig, scenario: &str) -> Result<Source> {
    let (header, traffic) = Traffic::new(config, scenario)?;
    Ok(Source {
        header,
        events: Box::new(traffic),
    })
}

/// Builds the event source of scenario `name` with `seed` (scripted scenarios
/// ignore the seed: they are exact timelines).
pub fn source(name: &str, seed: u64) -> Result<Source> {
    info(name)?;
    if name == "realistic" {
        return generated(realistic_config(seed), name);
    }
    let script = script(name)?;
    let header = Header::new(script.start, script.processes).with_origin(name, seed);
    let mut events = script.events;
    events.sort_by_key(Event::t_us); // stable: same-instant events keep script order
    Ok(Source {
        header,
        events: Box::new(events.into_iter().map(Ok)),
    })
}

/// 2025-10-06T09:00:00+08:00, the Monday of the incident.
fn incident_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_759_712_400, 0).unwrap_or_default()
}

/// The `stampede` scenario's name.
pub const STAMPEDE: &str = "stampede";
/// App processes in `stampede`.
pub const STAMPEDE_PROCESSES: u32 = 4;
/// Readers in `stampede`'s burst at expiry.
pub const STAMPEDE_BURST: u64 = 400;

const PH: WireFormat = WireFormat::Offset { seconds: 8 * 3600 };

struct Script {
    start: DateTime<Utc>,
    processes: u32,
    events: Vec<Event>,
}

fn date(y: i32, m: u32, d: u32) -> Result<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| Error::Invalid(format!("{y}-{m}-{d}")))
}

fn view(scopes: &[&str], cv: CalendarView, on: NaiveDate, first_day: u8, fmt: &WireFormat) -> Result<View> {
    let dates = visible_range(cv, on, &ViewOptions::with_first_day(first_day));
    let (range, tz) = feed_range(dates, fmt)?;
    let scopes = scopes
        .iter()
        .map(|s| Scope::new(*s))
        .collect::<cache_core::Result<Vec<_>>>()?;
    let mut v = View::new(scopes, range)?;
    if let Some(z) = tz {
        v = v.with_param("timeZone", z);
    }
    Ok(v)
}

/// An item at `hour`:00 +08:00 on `on`, one hour long.
fn item_at(on: NaiveDate, hour: u32, work_type: u8, status: u8) -> ItemState {
    let start_us = on
        .and_hms_opt(hour, 0, 0)
        .map(|t| t.and_utc().timestamp_micros() - 8 * 3_600_000_000)
        .unwrap_or(0);
    ItemState {
        start_us,
        end_us: start_us + 3_600_000_000,
        work_type,
        status,
    }
}

impl Script {
    fn new(processes: u32) -> Self {
        Script {
            start: incident_start(),
            processes,
            events: Vec::new(),
        }
    }

    fn read_us(&mut self, t_us: u64, process: u32, user: u64, view: &View) {
        self.events.push(Event::Read {
            t_us,
            process,
            user,
            tab: 0,
            view: view.clone(),
            line: LineNo::GENERATED,
        });
    }

    fn read(&mut self, t_ms: u64, process: u32, user: u64, view: &View) {
        self.read_us(t_ms * 1000, process, user, view);
    }

    fn write_us(&mut self, t_us: u64, process: u32, kind: WriteKind, item: u64, scope: &str, state: Option<ItemState>) {
        self.events.push(Event::Write {
            t_us,
            process,
            user: 1,
            write: Write {
                kind,
                item,
                scope: scope.to_owned(),
                state,
            },
            line: LineNo::GENERATED,
        });
    }

    fn write(&mut self, t_ms: u64, kind: WriteKind, item: u64, scope: &str, state: Option<ItemState>) {
        self.write_us(t_ms * 1000, 0, kind, item, scope, state);
    }

    /// Process 0's store loses the strategy's control keys for `view` at
    /// `t_ms`.
    fn evict(&mut self, t_ms: u64, view: &View) {
        self.events.push(Event::EvictControl {
            t_us: t_ms * 1000,
            process: 0,
            view: view.clone(),
            line: LineNo::GENERATED,
        });
    }

    /// Items 1..=n of `scope` spread over Sep 29 .. Nov 9, ids from `first_id`.
    fn load_month(&mut self, scope: &str, first_id: u64, n: u64) -> Result<()> {
        let base = date(2025, 9, 29)?;
        for i in 0..n {
            let on = base + chrono::Duration::days((i * 41 / n.max(1)) as i64);
            let st = item_at(on, 9 + (i % 8) as u32, (i % 5) as u8, (i % 3) as u8);
            self.write(0, WriteKind::Load, first_id + i, scope, Some(st));
        }
        Ok(())
    }
}
