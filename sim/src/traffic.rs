//! A seeded generator of FullCalendar traffic: users as browser tabs.
//!
//! Model (every number is a field of [`TrafficConfig`]):
//! - users' activity follows a Zipf law over users (a few heavy users, a long
//!   tail); each user is a Poisson process of actions;
//! - each user owns a calendar `cal:<u>` and belongs to one or two team
//!   calendars `team:<t>`; a feed shows the user's calendar plus their teams
//!   (shared calendars: a team item is in the feeds of every member);
//! - a user has one to three tabs; a tab is a FullCalendar instance with a
//!   view, a date, the user's `firstDay` and wire format, filters, and the
//!   last fetched range for `lazyFetching`;
//! - actions: prev/next/today, view switches, filter changes, page reloads,
//!   and writes (create, edit, move, delete), each write followed by
//!   `refetchEvents()` on the writing tab;
//! - item dates cluster around "today" (Laplace-distributed days);
//! - each user's browser writes ranges in one wire format drawn from
//!   [`TrafficConfig::zones`] (default [`default_zone_mix`]: most users in
//!   browser-local zones with daylight saving, as most calendar users are), and
//!   their "today" is that zone's local date; prev/next move from the view's
//!   start, as FullCalendar does ([`navigate`]).
//!
//! Events come out in time order from a heap of pending wake-ups, so the
//! generator streams: memory is bounded by users and items, not by length.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use cache_core::{Scope, TimeRange, View};
use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};

use crate::calendar::{self, feed_range, navigate, visible_range, CalendarView, Nav, ViewOptions, WireFormat};
use crate::db::{ItemState, Write, WriteKind, STATUSES, WORK_TYPES};
use crate::error::{Error, Result};
use crate::rng::{Rng, Zipf};
use crate::trace::{Event, Header, LineNo, MAX_PROCESSES};

/// Most users a generator accepts: each user and calendar is kept in memory
/// with its items (see [`MAX_ITEMS`]).
pub const MAX_USERS: u32 = 100_000;
/// Most team calendars a generator accepts.
pub const MAX_TEAMS: u32 = 100_000;
/// Most simulated days: a trace spans at most [`crate::trace::MAX_T_US`].
pub const MAX_DAYS: u32 = 3_650;
/// Most user actions over a run (≈ 0.8 events each): 100 M actions is a
/// trace of about 20 GB.
pub const MAX_ACTIONS: u64 = 100_000_000;
/// Most items loaded at the start, (users + teams) × items per calendar:
/// every one is kept in memory by the generator and the replay.
pub const MAX_ITEMS: u64 = 10_000_000;

/// Parameters of the traffic model.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrafficConfig {
    /// Virtual start (the first "today").
    pub start: DateTime<Utc>,
    /// Simulated duration in days.
    pub days: u32,
    /// Users.
    pub users: u32,
    /// Team calendars shared among users.
    pub teams: u32,
    /// Items per calendar at the start.
    pub items_per_calendar: u32,
    /// Total user actions over the run (a read happens on most).
    pub actions: u64,
    /// Zipf exponent of activity over users.
    pub zipf_s: f64,
    /// Share of actions that are writes.
    pub write_share: f64,
    /// App processes requests are spread over (a load balancer picks one
    /// uniformly per request).
    pub processes: u32,
    /// The seed of every random choice.
    pub seed: u64,
    /// How users' browsers write ranges, with each format's share of users
    /// (shares are relative weights; see [`ZoneShare::parse_mix`]).
    pub zones: Vec<ZoneShare>,
}

/// One entry of the zone mix: a share of users and the wire format of their
/// browser.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ZoneShare {
    /// Relative weight (need not sum to 1 over the mix).
    pub share: f64,
    /// How these users' FullCalendar writes `start`/`end`.
    pub format: WireFormat,
}

impl ZoneShare {
    /// `share` of users writing ranges as `format`.
    pub fn new(share: f64, format: WireFormat) -> Self {
        ZoneShare { share, format }
    }

    /// Parses a mix written `KIND[:ZONE]=SHARE,…`: `local:America/New_York=14`
    /// (a browser in that IANA zone), `offset:+08:00=20` (a browser with a
    /// fixed offset), `utc=8` (`timeZone: 'UTC'`), `named:Europe/Berlin=2`
    /// (`timeZone=Europe/Berlin`, no offsets on the wire).
    pub fn parse_mix(text: &str) -> Result<Vec<ZoneShare>> {
        let bad = |part: &str, why: &str| Error::Invalid(format!("zone mix entry {part:?}: {why}"));
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (what, share) = part
                .rsplit_once('=')
                .ok_or_else(|| bad(part, "expected KIND[:ZONE]=SHARE"))?;
            let share: f64 = share
                .trim()
                .parse()
                .map_err(|_| bad(part, "the share is not a number"))?;
            let (kind, arg) = what.split_once(':').unwrap_or((what, ""));
            let format = match kind {
                "utc" if arg.is_empty() => WireFormat::Utc,
                "local" => WireFormat::Local(cache_core::wire::parse_zone(arg).map_err(|e| bad(part, &e.to_string()))?),
                "named" => {
                    cache_core::wire::parse_zone(arg).map_err(|e| bad(part, &e.to_string()))?;
                    WireFormat::Named(arg.to_owned())
                }
                "offset" => {
                    let t = chrono::DateTime::parse_from_rfc3339(&format!("2025-01-01T00:00:00{arg}"))
                        .map_err(|_| bad(part, "expected an offset such as +08:00 or -05:30"))?;
                    WireFormat::Offset {
                        seconds: t.offset().local_minus_utc(),
                    }
                }
                _ => return Err(bad(part, "KIND is one of local, offset, utc, named")),
            };
            out.push(ZoneShare::new(share, format));
        }
        check_mix(&out)?;
        Ok(out)
    }
}

fn check_mix(mix: &[ZoneShare]) -> Result<f64> {
    if let Some(z) = mix.iter().find(|z| !z.share.is_finite() || z.share < 0.0) {
        return Err(Error::Invalid(format!(
            "zone mix: share {} of {:?} must be a finite number >= 0",
            z.share, z.format
        )));
    }
    let total: f64 = mix.iter().map(|z| z.share).sum();
    if total <= 0.0 {
        return Err(Error::Invalid("zone mix: the shares must not all be 0".into()));
    }
    Ok(total)
}

/// The default zone mix, in percent of users. Most calendar users live in
/// zones with daylight saving; the seed's own users are in the Philippines
/// (+08:00, no daylight saving); some apps pin `timeZone: 'UTC'` or send a
/// named zone. Santiago is there for its midnight change.
pub fn default_zone_mix() -> Vec<ZoneShare> {
    use chrono_tz::{America, Asia, Australia, Europe};
    vec![
        ZoneShare::new(14.0, WireFormat::Local(America::New_York)),
        ZoneShare::new(6.0, WireFormat::Local(America::Chicago)),
        ZoneShare::new(8.0, WireFormat::Local(America::Los_Angeles)),
        ZoneShare::new(8.0, WireFormat::Local(Europe::London)),
        ZoneShare::new(10.0, WireFormat::Local(Europe::Berlin)),
        ZoneShare::new(2.0, WireFormat::Local(America::Santiago)),
        ZoneShare::new(4.0, WireFormat::Local(Australia::Sydney)),
        ZoneShare::new(20.0, WireFormat::Local(Asia::Manila)),
        ZoneShare::new(6.0, WireFormat::Local(Asia::Tokyo)),
        ZoneShare::new(4.0, WireFormat::Local(Asia::Kolkata)),
        ZoneShare::new(2.0, WireFormat::Local(America::Phoenix)),
        ZoneShare::new(8.0, WireFormat::Utc),
        ZoneShare::new(3.0, WireFormat::Named("Asia/Manila".into())),
        ZoneShare::new(3.0, WireFormat::Named("America/New_York".into())),
        ZoneShare::new(2.0, WireFormat::Named("Europe/Berlin".into())),
    ]
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            start: DateTime::from_timestamp(1_759_741_200, 0).unwrap_or_default(), // 2025-10-06T09:00:00Z
            days: 7,
            users: 300,
            teams: 20,
            items_per_calendar: 40,
            actions: 1_000_000,
            zipf_s: 1.0,
            write_share: 0.04,
            processes: 1,
            seed: 1,
            zones: default_zone_mix(),
        }
    }
}

#[derive(Debug, Clone)]
struct Tab {
    view: CalendarView,
    date: NaiveDate,
    fetched: Option<TimeRange>,
    filters: (Option<&'static str>, Option<&'static str>),
}

#[derive(Debug)]
struct User {
    scopes: Vec<Scope>,
    writable: Vec<u32>,
    opts: ViewOptions,
    fmt: WireFormat,
    tabs: Vec<Tab>,
    mean_gap_us: f64,
}

#[derive(Debug)]
enum Pending {
    Wake(u32),
    Emit(Box<Event>),
}

/// The streaming generator; an iterator of events in time order.
#[derive(Debug)]
pub struct Traffic {
    cfg: TrafficConfig,
    rng: Rng,
    users: Vec<User>,
    /// Per calendar (users first, then teams): (item id, state).
    calendars: Vec<Vec<(u64, ItemState)>>,
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    pending: Vec<Option<Pending>>,
    free: Vec<u32>,
    seq: u64,
    next_item: u64,
    end_us: u64,
    loads: std::vec::IntoIter<Event>,
}

fn calendar_name(cfg: &TrafficConfig, c: u32) -> String {
    if c < cfg.users {
        format!("cal:{c}")
    } else {
        format!("team:{}", c - cfg.users)
    }
}

impl TrafficConfig {
    /// Checks every field against its documented range; the error names the
    /// field. [`Traffic::new`] calls it, so nothing is sized by an unchecked
    /// value.
    pub fn check(&self) -> Result<()> {
        let range = |name: &str, value: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(Error::OutOfRange {
                    name: name.to_owned(),
                    value: value.to_string(),
                    range: format!("{lo}..={hi}"),
                })
            }
        };
        range("users", u64::from(self.users), 1, u64::from(MAX_USERS))?;
        range("teams", u64::from(self.teams), 0, u64::from(MAX_TEAMS))?;
        range("days", u64::from(self.days), 1, u64::from(MAX_DAYS))?;
        range("actions", self.actions, 1, MAX_ACTIONS)?;
        range("processes", u64::from(self.processes), 1, u64::from(MAX_PROCESSES))?;
        let items = (u64::from(self.users) + u64::from(self.teams)) * u64::from(self.items_per_calendar);
        range("(users + teams) × items_per_calendar", items, 0, MAX_ITEMS)?;
        for (name, value, ok) in [
            ("zipf_s", self.zipf_s, self.zipf_s.is_finite() && self.zipf_s >= 0.0),
            ("write_share", self.write_share, (0.0..1.0).contains(&self.write_share)),
        ] {
            if !ok {
                return Err(Error::OutOfRange {
                    name: name.to_owned(),
                    value: value.to_string(),
                    range: if name == "zipf_s" { "0.0.." } else { "0.0..1.0" }.to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl Traffic {
    /// A generator for `cfg`, with its trace header; `cfg` must pass
    /// [`TrafficConfig::check`].
    pub fn new(cfg: TrafficConfig, scenario: &str) -> Result<(Header, Traffic)> {
        cfg.check()?;
        let header = Header::new(cfg.start, cfg.processes).with_origin(scenario, cfg.seed);
        let mut rng = Rng::derive(cfg.seed, 0x7472_6166);
        let zipf = Zipf::new(cfg.users.max(1) as usize, cfg.zipf_s);
        let duration_us = u64::from(cfg.days.max(1)) * 86_400_000_000;
        let zone_total = check_mix(&cfg.zones)?;
        let mut users = Vec::with_capacity(cfg.users as usize);
        for u in 0..cfg.users.max(1) {
            let mut scopes = vec![Scope::new(format!("cal:{u}"))?];
            let mut writable = vec![u];
            if cfg.teams > 0 {
                let t = rng.below(u64::from(cfg.teams)) as u32;
                scopes.push(Scope::new(format!("team:{t}"))?);
                writable.push(cfg.users + t);
                if rng.chance(0.3) {
                    let t2 = rng.below(u64::from(cfg.teams)) as u32;
                    if t2 != t {
                        scopes.push(Scope::new(format!("team:{t2}"))?);
                        writable.push(cfg.users + t2);
                    }
                }
            }
            let fmt = pick_format(&cfg.zones, zone_total, rng.f64());
            let today = calendar::today(&fmt, cfg.start);
            let opts = ViewOptions::with_first_day(if rng.chance(0.4) { 1 } else { 0 });
            let ntabs = 1 + rng.below(3) as usize;
            let tabs = (0..ntabs)
                .map(|_| Tab {
                    view: CalendarView::DayGridMonth,
                    date: today,
                    fetched: None,
                    filters: (None, None),
                })
                .collect();
            let rate = (cfg.actions as f64 * zipf.weight(u as usize)).max(1e-9);
            users.push(User {
                scopes,
                writable,
                opts,
                fmt,
                tabs,
                mean_gap_us: duration_us as f64 / rate,
            });
        }
        let ncal = cfg.users.max(1) + cfg.teams;
        let mut calendars: Vec<Vec<(u64, ItemState)>> = vec![Vec::new(); ncal as usize];
        let mut loads = Vec::new();
        let mut next_item = 1u64;
        let start_us = cfg.start.timestamp_micros();
        for c in 0..ncal {
            for _ in 0..cfg.items_per_calendar {
                let state = random_item(&mut rng, start_us);
                let id = next_item;
                next_item += 1;
                calendars[c as usize].push((id, state));
                loads.push(Event::Write {
                    t_us: 0,
                    process: 0,
                    user: 0,
                    write: Write {
                        kind: WriteKind::Load,
                        item: id,
                        scope: calendar_name(&cfg, c),
                        state: Some(state),
                    },
                    line: LineNo::GENERATED,
                });
            }
        }
        let mut g = Traffic {
            end_us: duration_us,
            cfg,
            rng,
            users,
            calendars,
            heap: BinaryHeap::new(),
            pending: Vec::new(),
            free: Vec::new(),
            seq: 0,
            next_item,
            loads: loads.into_iter(),
        };
        for u in 0..g.users.len() as u32 {
            let gap = g.rng.exp(g.users[u as usize].mean_gap_us) as u64;
            g.push(1 + gap, Pending::Wake(u));
        }
        Ok((header, g))
    }

    fn push(&mut self, t: u64, p: Pending) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.pending[s as usize] = Some(p);
                s
            }
            None => {
                self.pending.push(Some(p));
                (self.pending.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, slot)));
    }

    /// User `u`'s local date at `t_us` (FullCalendar's `today`).
    fn today(&self, u: u32, t_us: u64) -> NaiveDate {
        let now = self.cfg.start + ChronoDuration::microseconds(t_us as i64);
        calendar::today(&self.users[u as usize].fmt, now)
    }

    /// The request a tab makes after moving to (view, date), if any.
    fn fetch(&mut self, u: u32, tab: usize, t: u64, force: bool) -> Option<Event> {
        let user = &mut self.users[u as usize];
        let process = if self.cfg.processes > 1 {
            self.rng.below(u64::from(self.cfg.processes)) as u32
        } else {
            0
        };
        let t_state = &mut user.tabs[tab];
        let dates = visible_range(t_state.view, t_state.date, &user.opts);
        let (range, tz) = feed_range(dates, &user.fmt).ok()?;
        if !force && t_state.fetched.is_some_and(|f| f.contains(&range)) {
            return None; // lazyFetching: the range is inside what the tab already has.
        }
        t_state.fetched = Some(range);
        let mut view = View::new(user.scopes.iter().cloned(), range).ok()?;
        if let Some(z) = tz {
            view = view.with_param("timeZone", z);
        }
        if let Some(w) = t_state.filters.0 {
            view = view.with_param("work_type", w);
        }
        if let Some(s) = t_state.filters.1 {
            view = view.with_param("status", s);
        }
        Some(Event::Read {
            t_us: t,
            process,
            user: u64::from(u),
            tab: tab as u32,
            view,
            line: LineNo::GENERATED,
        })
    }

    fn write(&mut self, u: u32, t: u64) -> Option<Event> {
        let start_us = self.cfg.start.timestamp_micros() + t as i64;
        let user = &self.users[u as usize];
        let cal = user.writable[if self.rng.chance(0.7) {
            0
        } else {
            self.rng.index(user.writable.len())
        }];
        let items = &mut self.calendars[cal as usize];
        let roll = self.rng.f64();
        let (kind, item, state) = if items.is_empty() || roll < 0.4 {
            let id = self.next_item;
            self.next_item += 1;
            let s = random_item(&mut self.rng, start_us);
            items.push((id, s));
            (WriteKind::Create, id, Some(s))
        } else if roll < 0.85 {
            let i = self.rng.index(items.len());
            let (id, mut s) = items[i];
            if self.rng.chance(0.3) {
                // Move: drag to another day, near or far.
                let days = self.rng.laplace(5.0).round() as i64;
                let shift = if days == 0 { 1 } else { days } * 86_400_000_000;
                s.start_us += shift;
                s.end_us += shift;
            } else {
                s.status = self.rng.below(STATUSES.len() as u64) as u8;
            }
            items[i].1 = s;
            (WriteKind::Edit, id, Some(s))
        } else {
            let i = self.rng.index(items.len());
            let (id, _) = items.swap_remove(i);
            (WriteKind::Delete, id, None)
        };
        Some(Event::Write {
            t_us: t,
            process: if self.cfg.processes > 1 {
                self.rng.below(u64::from(self.cfg.processes)) as u32
            } else {
                0
            },
            user: u64::from(u),
            write: Write {
                kind,
                item,
                scope: calendar_name(&self.cfg, cal),
                state,
            },
            line: LineNo::GENERATED,
        })
    }

    /// One action of user `u` at `t`; pushes the events it causes.
    fn act(&mut self, u: u32, t: u64) {
        let today = self.today(u, t);
        let ntabs = self.users[u as usize].tabs.len();
        let tab = if self.rng.chance(0.7) { 0 } else { self.rng.index(ntabs) };
        let roll = self.rng.f64();
        let write_share = self.cfg.write_share;
        let ev = if roll < write_share {
            if let Some(w) = self.write(u, t) {
                self.push(t, Pending::Emit(Box::new(w)));
            }
            // refetchEvents() once the write's response is back.
            let delay = 50_000 + self.rng.below(250_000);
            self.fetch(u, tab, t + delay, true).map(|e| (e, t + delay))
        } else {
            let r = (roll - write_share) / (1.0 - write_share);
            let user = &mut self.users[u as usize];
            let opts = user.opts;
            let t_state = &mut user.tabs[tab];
            if r < 0.40 {
                let nav = if self.rng.chance(0.6) { Nav::Next } else { Nav::Prev };
                t_state.date = navigate(t_state.view, t_state.date, nav, &opts);
            } else if r < 0.50 {
                t_state.date = navigate(t_state.view, t_state.date, Nav::Today(today), &opts);
            } else if r < 0.65 {
                t_state.view = match self.rng.below(10) {
                    0..=3 => CalendarView::DayGridMonth,
                    4..=5 => CalendarView::TimeGridWeek,
                    6 => CalendarView::DayGridWeek,
                    7 => CalendarView::TimeGridDay,
                    8 => CalendarView::ListWeek,
                    _ => CalendarView::ListMonth,
                };
            } else if r < 0.70 {
                t_state.filters = if self.rng.chance(0.5) {
                    (None, None)
                } else if self.rng.chance(0.5) {
                    (Some(WORK_TYPES[self.rng.index(WORK_TYPES.len())]), None)
                } else {
                    (None, Some(STATUSES[self.rng.index(STATUSES.len())]))
                };
                t_state.fetched = None; // new extraParams → refetch
            } else {
                // Page reload: a fresh FullCalendar on today's month.
                *t_state = Tab {
                    view: CalendarView::DayGridMonth,
                    date: today,
                    fetched: None,
                    filters: t_state.filters,
                };
            }
            self.fetch(u, tab, t, false).map(|e| (e, t))
        };
        if let Some((e, at)) = ev {
            self.push(at, Pending::Emit(Box::new(e)));
        }
        let gap = self.rng.exp(self.users[u as usize].mean_gap_us) as u64;
        self.push(t + 1 + gap, Pending::Wake(u));
    }
}

/// The format at `roll` (uniform in [0, 1)) of the cumulative shares.
fn pick_format(mix: &[ZoneShare], total: f64, roll: f64) -> WireFormat {
    let mut at = roll * total;
    for z in mix {
        if at < z.share {
            return z.format.clone();
        }
        at -= z.share;
    }
    // Rounding left `at` just past the last share: the last non-zero entry.
    mix.iter()
        .rev()
        .find(|z| z.share > 0.0)
        .map_or(WireFormat::Utc, |z| z.format.clone())
}

fn random_item(rng: &mut Rng, now_us: i64) -> ItemState {
    let day = 86_400_000_000i64;
    let offset_days = rng.laplace(10.0).round() as i64;
    let midnight = now_us - now_us.rem_euclid(day);
    let (start_us, end_us) = if rng.chance(0.1) {
        let s = midnight + offset_days * day;
        (s, s + day)
    } else {
        let s = midnight + offset_days * day + (8 + rng.below(10) as i64) * 3_600_000_000;
        (s, s + (1 + rng.below(6) as i64) * 1_800_000_000)
    };
    ItemState {
        start_us,
        end_us,
        work_type: rng.below(WORK_TYPES.len() as u64) as u8,
        status: rng.below(STATUSES.len() as u64) as u8,
    }
}

impl Iterator for Traffic {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(l) = self.loads.next() {
            return Some(Ok(l));
        }
        loop {
            let Reverse((t, _, slot)) = self.heap.pop()?;
            let p = self.pending.get_mut(slot as usize).and_then(Option::take);
            self.free.push(slot);
            match p {
                Some(Pending::Emit(e)) => return Some(Ok(*e)),
                Some(Pending::Wake(u)) if t <= self.end_us => self.act(u, t),
                Some(Pending::Wake(_)) => {}
                None => {}
            }
        }
    }
}
