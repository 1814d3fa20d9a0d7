//! A trace mapped onto the service: its calendars, users, starting items
//! and requests, and the same traffic as the simulator's events for the
//! prediction.
//!
//! # The mapping (deterministic; `docs/world.md` has the table)
//!
//! - **Scopes → calendars.** Every scope of the trace (`cal:1`, `team:3`)
//!   is a calendar, ids 1, 2, … in order of first appearance; its name is
//!   the scope's.
//! - **Users → members.** Trace user `17` is the service user `u17` (the
//!   `user` cookie); it is a member of exactly the calendars its feeds show.
//!   A user whose feeds show different sets of scopes cannot be mapped (the
//!   service's feed shows every calendar of the user) and is an error
//!   naming the line; so is a write to a scope the writer's feeds do not show.
//! - **Items.** `load` events are the seeded items (ids 1, 2, …, in trace
//!   order); when there are fewer than the minimum (10,000 by default), more
//!   are added, deterministically from the seed, spread over the calendars.
//!   Creates get the ids the service gives them. Instants become all-day
//!   dates: the UTC date of `start` to the day after the UTC date of the
//!   last instant before `end`. Work types and statuses fold onto the
//!   service's: `task`, `review` → `feature`; `deadline` → `bug`;
//!   `meeting`, `leave` → `chore`; `open` → `open`; `in_progress`, `blocked`
//!   → `in_progress`; `done`, `cancelled` → `done`.
//! - **Feeds.** The query string is what this service's page sends through
//!   FullCalendar 6 (`URLSearchParams`): `work_type`, `status` (empty for
//!   "all"), `start`, `end` exactly as the trace has them, then `timeZone`
//!   when the trace has one; filter values folded as above.
//! - **The prediction's events** are the same traffic after that mapping:
//!   items with the day-aligned instants and a representative of each
//!   folded value (`task`, `deadline`, `meeting`; `open`, `in_progress`,
//!   `done`), filters folded the same way, so that the simulator caches,
//!   invalidates and judges the views the world does.

use std::collections::HashMap;

use cache_core::{Scope, View};
use sim::db::{ItemState, Write, WriteKind};
use sim::rng::Rng;
use sim::trace::{Event, Header, LineNo, Source};

use crate::db::{Calendar, Item, ItemInput, Seed};

use super::mapping::{
    fold_filter, item_dates, midnight_us, model_filter, status, status_code, work_type, work_type_code,
};
use super::LoadError;

/// Most requests one replay holds in memory.
pub const MAX_REQUESTS: usize = 4_000_000;

/// A user as the service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The `user` cookie: `u<trace user id>`.
    pub name: String,
    /// The calendars the user's feed shows (service ids, sorted).
    pub calendars: Vec<i64>,
}

/// What a request does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /calendar/feed?<query>`.
    Feed {
        /// The query string, encoded as the page's FullCalendar sends it.
        query: String,
    },
    /// `POST /api/items`.
    Create {
        /// The item's slot in [`Workload::items`].
        item: u32,
        /// The body.
        input: ItemInput,
    },
    /// `PUT /api/items/{id}`.
    Update {
        /// The item's slot.
        item: u32,
        /// Earlier writes of this item that must complete first.
        after: u32,
        /// The body.
        input: ItemInput,
    },
    /// `DELETE /api/items/{id}`.
    Delete {
        /// The item's slot.
        item: u32,
        /// Earlier writes of this item that must complete first.
        after: u32,
    },
}

/// One request of the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// µs after the trace's start.
    pub t_us: u64,
    /// The service process the trace sends it to.
    pub process: u16,
    /// Index into [`Workload::users`].
    pub user: u32,
    /// What it does.
    pub kind: RequestKind,
    /// The trace line it came from (0 when generated).
    pub line: u64,
}

/// An item the replay writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemSlot {
    /// Its id in the trace.
    pub trace_id: u64,
    /// Its service id when it is seeded; created items learn theirs from
    /// the create's response.
    pub seeded: Option<i64>,
}

/// Counts that describe the workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadStats {
    /// `load` events in the trace.
    pub trace_items: u64,
    /// Items added to reach the minimum.
    pub extra_items: u64,
    /// Feed requests.
    pub feeds: u64,
    /// Creates, edits and deletes.
    pub writes: u64,
    /// Distinct feed queries in the trace (user's scopes, range, zone, filters).
    pub trace_views: u64,
    /// Distinct feed queries after folding the filters onto the service's
    /// values: fewer than `trace_views` when two trace filters fold into one.
    pub world_views: u64,
}

/// A trace mapped onto the service; see the [module docs](self).
#[derive(Debug)]
pub struct Workload {
    /// The trace's header (start, processes).
    pub header: Header,
    /// The calendars (ids 1..).
    pub calendars: Vec<Calendar>,
    /// The users.
    pub users: Vec<UserInfo>,
    /// The database every row starts from.
    pub seed: Seed,
    /// The requests, in trace order.
    pub requests: Vec<Request>,
    /// The items the requests write.
    pub items: Vec<ItemSlot>,
    /// The same traffic for the simulator.
    pub sim_events: Vec<Event>,
    /// The trace time replayed, µs.
    pub window_us: u64,
    /// Counts.
    pub stats: WorkloadStats,
}

/// Builds the workload from a trace source. `window_us`: replay events up
/// to this trace time (`None`: all); `min_items`: seed at least this many
/// items; `seed`: for the added items.
pub fn build(source: Source, window_us: Option<u64>, min_items: u64, seed: u64) -> Result<Workload, LoadError> {
    Builder::new(source.header.clone()).run(source, window_us, min_items, seed)
}

/// Where a scope's calendar, a user, an item stand while the trace is read.
struct Builder {
    header: Header,
    scopes: HashMap<String, i64>,
    scope_names: Vec<String>,
    users: HashMap<u64, u32>,
    user_ids: Vec<u64>,
    /// Per user: the scopes of its feeds and the line that showed them.
    user_scopes: Vec<Option<(Vec<String>, u64)>>,
    /// Per user: (scope, line) of each write, checked at the end.
    user_writes: Vec<Vec<(String, u64)>>,
    items: HashMap<u64, u32>,
    slots: Vec<ItemSlot>,
    /// Per item: its scope, API writes so far, deleted.
    item_state: Vec<(String, u32, bool)>,
    seed_items: Vec<Item>,
    requests: Vec<Request>,
    sim_events: Vec<Event>,
    loads: Vec<Event>,
    trace_views: std::collections::HashSet<String>,
    world_views: std::collections::HashSet<String>,
}

fn trace_error(line: u64, message: String) -> LoadError {
    LoadError::Workload { line, message }
}

impl Builder {
    fn new(header: Header) -> Self {
        Builder {
            header,
            scopes: HashMap::new(),
            scope_names: Vec::new(),
            users: HashMap::new(),
            user_ids: Vec::new(),
            user_scopes: Vec::new(),
            user_writes: Vec::new(),
            items: HashMap::new(),
            slots: Vec::new(),
            item_state: Vec::new(),
            seed_items: Vec::new(),
            requests: Vec::new(),
            sim_events: Vec::new(),
            loads: Vec::new(),
            trace_views: Default::default(),
            world_views: Default::default(),
        }
    }

    fn calendar(&mut self, scope: &str) -> i64 {
        if let Some(&id) = self.scopes.get(scope) {
            return id;
        }
        let id = self.scope_names.len() as i64 + 1;
        self.scopes.insert(scope.to_owned(), id);
        self.scope_names.push(scope.to_owned());
        id
    }

    fn user(&mut self, trace_id: u64) -> u32 {
        if let Some(&u) = self.users.get(&trace_id) {
            return u;
        }
        let u = self.user_ids.len() as u32;
        self.users.insert(trace_id, u);
        self.user_ids.push(trace_id);
        self.user_scopes.push(None);
        self.user_writes.push(Vec::new());
        u
    }

    fn item_input(&mut self, trace_id: u64, scope: &str, state: &ItemState, line: u64) -> Result<ItemInput, LoadError> {
        let (start, end) = item_dates(state.start_us, state.end_us);
        if (end - start).num_days() > 366 {
            return Err(trace_error(
                line,
                format!("item {trace_id} spans more than 366 days, which the service refuses"),
            ));
        }
        Ok(ItemInput {
            calendar_id: self.calendar(scope),
            title: format!("item {trace_id}"),
            work_type: work_type(state.work_type).to_owned(),
            status: status(state.status).to_owned(),
            start,
            end,
        })
    }

    /// The prediction's state for what the service stores from `input`.
    fn model_state(input: &ItemInput) -> ItemState {
        ItemState {
            start_us: midnight_us(input.start),
            end_us: midnight_us(input.end),
            work_type: work_type_code(&input.work_type).unwrap_or(0),
            status: status_code(&input.status).unwrap_or(0),
        }
    }

    fn load(&mut self, write: &Write, line: u64) -> Result<(), LoadError> {
        let Some(state) = write.state else {
            return Err(trace_error(line, "a load without dates".into()));
        };
        if self.items.contains_key(&write.item) {
            return Err(trace_error(line, format!("item {} is loaded twice", write.item)));
        }
        let input = self.item_input(write.item, &write.scope, &state, line)?;
        let id = self.seed_items.len() as i64 + 1;
        self.seed_items.push(Item {
            id,
            calendar_id: input.calendar_id,
            title: input.title.clone(),
            work_type: input.work_type.clone(),
            status: input.status.clone(),
            start: input.start,
            end: input.end,
        });
        self.items.insert(write.item, self.slots.len() as u32);
        self.slots.push(ItemSlot {
            trace_id: write.item,
            seeded: Some(id),
        });
        self.item_state.push((write.scope.clone(), 0, false));
        self.loads.push(Event::Write {
            t_us: 0,
            process: 0,
            user: 0,
            write: Write {
                kind: WriteKind::Load,
                item: write.item,
                scope: write.scope.clone(),
                state: Some(Self::model_state(&input)),
            },
            line: LineNo(line),
        });
        Ok(())
    }

    fn read(&mut self, t_us: u64, process: u32, user: u64, tab: u32, view: &View, line: u64) -> Result<(), LoadError> {
        let u = self.user(user);
        let scopes: Vec<String> = view.scopes.iter().map(|s| s.as_str().to_owned()).collect();
        match &self.user_scopes[u as usize] {
            None => {
                for s in &scopes {
                    self.calendar(s);
                }
                self.user_scopes[u as usize] = Some((scopes.clone(), line));
            }
            Some((known, first)) if *known != scopes => {
                return Err(trace_error(
                    line,
                    format!(
                        "user {user}'s feed shows {scopes:?} here but {known:?} on line {first}; the service shows a \
                         user every calendar they are a member of, so each user's feeds must show one set of scopes"
                    ),
                ));
            }
            Some(_) => {}
        }
        let zone = view.params.get("timeZone").map(String::as_str);
        let (start, end) = sim::calendar::to_wire(&view.range, zone);
        let folded = |name: &str| view.params.get(name).map(|v| fold_filter(name, v));
        let (work_type, status) = (folded("work_type"), folded("status"));
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("work_type", work_type.as_deref().unwrap_or(""));
        query.append_pair("status", status.as_deref().unwrap_or(""));
        query.append_pair("start", &start);
        query.append_pair("end", &end);
        if let Some(z) = zone {
            query.append_pair("timeZone", z);
        }
        let query = query.finish();
        self.trace_views.insert(format!(
            "{scopes:?} {start} {end} {zone:?} {:?} {:?}",
            view.params.get("work_type"),
            view.params.get("status")
        ));
        self.world_views.insert(format!("{scopes:?} {query}"));
        let mut model = View::new(view.scopes.iter().cloned(), view.range)
            .map_err(|e| trace_error(line, format!("the view: {e}")))?;
        if let Some(z) = zone {
            model = model.with_param("timeZone", z);
        }
        for (name, value) in [("work_type", &work_type), ("status", &status)] {
            if let Some(v) = value {
                model = model.with_param(name, model_filter(name, v));
            }
        }
        self.sim_events.push(Event::Read {
            t_us,
            process,
            user,
            tab,
            view: model,
            line: LineNo(line),
        });
        self.push(t_us, process, u, RequestKind::Feed { query }, line)
    }

    fn push(&mut self, t_us: u64, process: u32, user: u32, kind: RequestKind, line: u64) -> Result<(), LoadError> {
        if self.requests.len() >= MAX_REQUESTS {
            return Err(trace_error(
                line,
                format!("more than {MAX_REQUESTS} requests in the window; replay a shorter one (--window-s)"),
            ));
        }
        self.requests.push(Request {
            t_us,
            process: u16::try_from(process).unwrap_or(u16::MAX),
            user,
            kind,
            line,
        });
        Ok(())
    }

    fn write(&mut self, t_us: u64, process: u32, user: u64, write: &Write, line: u64) -> Result<(), LoadError> {
        let u = self.user(user);
        self.user_writes[u as usize].push((write.scope.clone(), line));
        let slot = match (write.kind, self.items.get(&write.item).copied()) {
            (WriteKind::Create, Some(_)) => {
                return Err(trace_error(line, format!("item {} is created but exists", write.item)))
            }
            (WriteKind::Create, None) => {
                let slot = self.slots.len() as u32;
                self.items.insert(write.item, slot);
                self.slots.push(ItemSlot {
                    trace_id: write.item,
                    seeded: None,
                });
                self.item_state.push((write.scope.clone(), 0, false));
                slot
            }
            (_, Some(slot)) => slot,
            (kind, None) => {
                return Err(trace_error(
                    line,
                    format!("{} of item {} that no load or create made", kind.as_str(), write.item),
                ))
            }
        };
        let (scope, done, deleted) = self.item_state[slot as usize].clone();
        if deleted {
            return Err(trace_error(
                line,
                format!("item {} is written after its delete", write.item),
            ));
        }
        if scope != write.scope {
            return Err(trace_error(
                line,
                format!("item {} moves from scope {scope} to {}", write.item, write.scope),
            ));
        }
        let mut model = write.clone();
        let kind = match (write.kind, write.state) {
            (WriteKind::Delete, _) => RequestKind::Delete {
                item: slot,
                after: done,
            },
            (kind, Some(state)) => {
                let input = self.item_input(write.item, &write.scope, &state, line)?;
                model.state = Some(Self::model_state(&input));
                if kind == WriteKind::Create {
                    RequestKind::Create { item: slot, input }
                } else {
                    RequestKind::Update {
                        item: slot,
                        after: done,
                        input,
                    }
                }
            }
            (kind, None) => return Err(trace_error(line, format!("a {} without dates", kind.as_str()))),
        };
        self.item_state[slot as usize] = (scope, done + 1, write.kind == WriteKind::Delete);
        self.sim_events.push(Event::Write {
            t_us,
            process,
            user,
            write: model,
            line: LineNo(line),
        });
        self.push(t_us, process, u, kind, line)
    }

    /// Seeds items up to `min_items`, deterministically from `seed`.
    fn extra_items(&mut self, min_items: u64, seed: u64) -> Result<u64, LoadError> {
        let have = self.seed_items.len() as u64;
        if have >= min_items {
            return Ok(0);
        }
        if self.scope_names.is_empty() {
            return Err(trace_error(0, "the trace has no calendars to seed items into".into()));
        }
        let first_id = self.items.keys().max().copied().unwrap_or(0) + 1;
        let mut rng = Rng::derive(seed, 0x5eed_17e5);
        let day = 86_400_000_000i64;
        let start_us = self.header.start_us();
        let midnight = start_us - start_us.rem_euclid(day);
        for id in (first_id..).take(usize::try_from(min_items - have).unwrap_or(usize::MAX)) {
            let scope = self.scope_names[rng.index(self.scope_names.len())].clone();
            let first = midnight + rng.laplace(10.0).round() as i64 * day;
            let state = ItemState {
                start_us: first,
                end_us: first + (1 + rng.below(3) as i64) * day,
                work_type: rng.below(sim::db::WORK_TYPES.len() as u64) as u8,
                status: rng.below(sim::db::STATUSES.len() as u64) as u8,
            };
            let write = Write {
                kind: WriteKind::Load,
                item: id,
                scope,
                state: Some(state),
            };
            self.load(&write, 0)?;
        }
        Ok(min_items - have)
    }

    fn run(mut self, source: Source, window_us: Option<u64>, min_items: u64, seed: u64) -> Result<Workload, LoadError> {
        let mut trace_items = 0u64;
        let mut last_t = 0u64;
        for event in source.events {
            let event = event.map_err(LoadError::Trace)?;
            if window_us.is_some_and(|w| event.t_us() > w) {
                break;
            }
            last_t = event.t_us();
            match &event {
                Event::Write { write, line, .. } if write.kind == WriteKind::Load => {
                    trace_items += 1;
                    self.load(write, line.0)?;
                }
                Event::Write {
                    t_us,
                    process,
                    user,
                    write,
                    line,
                } => self.write(*t_us, *process, *user, write, line.0)?,
                Event::Read {
                    t_us,
                    process,
                    user,
                    tab,
                    view,
                    line,
                } => self.read(*t_us, *process, *user, *tab, view, line.0)?,
                Event::EvictControl { line, .. } => {
                    return Err(trace_error(
                        line.0,
                        "evict_control (a modelled loss of control keys) cannot be replayed against real servers; \
                         use the maxmemory or kill faults instead"
                            .into(),
                    ))
                }
                _ => return Err(trace_error(event.line(), "an event this tool does not know".into())),
            }
        }
        let extra = self.extra_items(min_items, seed)?;
        // Memberships: the scopes of each user's feeds; every write must be
        // to one of them (a user with no feed is a member of what it writes).
        let mut users = Vec::with_capacity(self.user_ids.len());
        let mut members = Vec::new();
        for (u, trace_id) in self.user_ids.iter().enumerate() {
            let scopes: Vec<String> = match &self.user_scopes[u] {
                Some((s, _)) => s.clone(),
                None => {
                    let mut s: Vec<String> = self.user_writes[u].iter().map(|(s, _)| s.clone()).collect();
                    s.sort();
                    s.dedup();
                    s
                }
            };
            if let Some((scope, line)) = self.user_writes[u].iter().find(|(s, _)| !scopes.contains(s)) {
                return Err(trace_error(
                    *line,
                    format!(
                        "user {trace_id} writes to {scope}, which its feeds ({scopes:?}) do not show; the service \
                         lets only members write to a calendar"
                    ),
                ));
            }
            let mut calendars: Vec<i64> = scopes.iter().map(|s| self.scopes[s.as_str()]).collect();
            calendars.sort_unstable();
            let name = format!("u{trace_id}");
            members.extend(calendars.iter().map(|c| (name.clone(), *c)));
            users.push(UserInfo { name, calendars });
        }
        const COLORS: [&str; 6] = ["#2a7ab0", "#8a5a00", "#2e7d32", "#7b1fa2", "#c62828", "#00838f"];
        let calendars: Vec<Calendar> = self
            .scope_names
            .iter()
            .enumerate()
            .map(|(i, name)| Calendar {
                id: i as i64 + 1,
                name: name.clone(),
                color: COLORS[i % COLORS.len()].to_owned(),
            })
            .collect();
        let feeds = self
            .requests
            .iter()
            .filter(|r| matches!(r.kind, RequestKind::Feed { .. }))
            .count() as u64;
        let stats = WorkloadStats {
            trace_items,
            extra_items: extra,
            feeds,
            writes: self.requests.len() as u64 - feeds,
            trace_views: self.trace_views.len() as u64,
            world_views: self.world_views.len() as u64,
        };
        let mut sim_events = std::mem::take(&mut self.loads);
        sim_events.append(&mut self.sim_events);
        Ok(Workload {
            header: self.header,
            seed: Seed {
                calendars: calendars.clone(),
                members,
                items: self.seed_items,
            },
            calendars,
            users,
            requests: self.requests,
            items: self.slots,
            sim_events,
            window_us: window_us.unwrap_or(last_t).min(last_t.max(1)),
            stats,
        })
    }
}

/// The scope of a service calendar, as the service names it in cache keys.
pub fn scope_of(calendar: i64) -> Option<Scope> {
    Scope::new(format!("cal:{calendar}")).ok()
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
