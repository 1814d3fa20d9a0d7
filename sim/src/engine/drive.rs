//! Driving a read's sans-IO flow through the cell: each [`Step`] performed
//! on the cell's stores at its virtual latency, the database's answer to a
//! load, and a leader's value handed to its waiters.

use super::*;

impl Run {
    /// Runs read slot `slot`'s flow from `now` until it waits for virtual
    /// time (a latency), for a leader, or is done.
    pub(super) async fn step(&mut self, slot: u32, now: i64) {
        let mut r = match std::mem::replace(&mut self.slots[slot as usize], Slot::Free) {
            Slot::Read(r) => r,
            Slot::Invalidate {
                store,
                change,
                process,
                committed,
            } => {
                let written = if self.cell.fenced_writes {
                    self.aside(store).end_write(&self.write[store], &change).await
                } else {
                    self.aside(store).invalidate(&self.write[store], &change).await
                };
                let ok = written.is_ok();
                self.rec.tally.record_invalidation(ok);
                self.free.push(slot);
                self.bumped(process, change, committed, ok, now);
                return;
            }
            Slot::Retry { process } => {
                self.free.push(slot);
                self.retry_round(process, now).await;
                return;
            }
            Slot::Poll => {
                self.free.push(slot);
                self.poll_outbox(now).await;
                return;
            }
            Slot::Wake { read, wait } => {
                self.free.push(slot);
                self.wake(read, wait, now);
                return;
            }
            Slot::TierFault { process, kind } => {
                self.free.push(slot);
                if let Some(fault) = self.cell.tier_faults.get(process as usize) {
                    fault(kind);
                }
                return;
            }
            Slot::Free => return,
        };
        let lat = self.cell.latencies;
        let next_at = loop {
            match r.flow.step() {
                Step::Plan => {
                    let before = self.trips(r.store);
                    let plan = self.aside(r.store).plan(&self.read[r.store], &r.info.view).await;
                    r.flow.planned(plan);
                    break now.saturating_add(self.charge(r.store, before, lat.plan_us));
                }
                Step::Get => {
                    // No round trip (and no latency) when the plan read the
                    // entry itself (`stamped`).
                    let (got, at) = match r.flow.fetch_key() {
                        Some(key) => {
                            let before = self.trips(r.store);
                            let got = self.read[r.store].get(key).await;
                            (got, now.saturating_add(self.charge(r.store, before, lat.get_us)))
                        }
                        None => (Ok(None), now),
                    };
                    r.flow.fetched(got, instant(now), self.aside(r.store));
                    if r.flow.step() == Step::Done {
                        self.serve(&r, at);
                        self.release(slot);
                        return;
                    }
                    break at;
                }
                Step::Join => {
                    let flights = self.flights_of(r.process);
                    if r.flow.join(flights, slot) {
                        // Parked: the leader's Publish hands it on.
                        if self.dbf.active {
                            self.arm_wait(slot, &mut r, now);
                        }
                        self.slots[slot as usize] = Slot::Read(r);
                        return;
                    }
                    // Led (go on to Load now) or took a value just loaded.
                }
                Step::Load if self.dbf.active => {
                    // A fault or a timeout may apply: `dbfault.rs`.
                    if let Some(at) = self.faulty_load(&mut r, now) {
                        break at;
                    }
                }
                Step::Load => {
                    let entry = self.query(&mut r, now);
                    let at = now.saturating_add(us(lat.db_us));
                    r.flow
                        .loaded(Some(entry), Duration::from_micros(lat.db_us), instant(at));
                    // Served at the DB's answer; publishing and filling follow.
                    self.serve(&r, at);
                    break at;
                }
                Step::Publish => {
                    let flights = self.flights_of(r.process);
                    let (waiters, _) = r.flow.publish(flights);
                    let handoff = r.flow.handoff();
                    for w in waiters {
                        self.hand_over(w, handoff.clone(), now);
                    }
                }
                Step::Store => {
                    if let Some(plan) = r.flow.plan() {
                        match plan.ttl {
                            Some(d) => {
                                let d = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                                self.max_ttl_us = Some(self.max_ttl_us.unwrap_or(0).max(d));
                            }
                            None => self.unbounded_ttl = true,
                        }
                    }
                    let stored = self
                        .aside(r.store)
                        .store(&self.read[r.store], &r.info.view, &r.flow)
                        .await;
                    r.flow.stored(stored);
                    if r.flow.step() == Step::Done {
                        self.release(slot);
                        return;
                    }
                    break now.saturating_add(us(lat.store_us));
                }
                Step::Finish => {
                    let flights = self.flights_of(r.process);
                    r.flow.finish(flights);
                    self.release(slot);
                    return;
                }
                _ => {
                    // Done (an uncached load, a failed one, or coalesced on a
                    // value being stored): served at this instant unless the
                    // load already counted it.
                    if r.flow.outcome().served == Served::Coalesced {
                        self.serve(&r, now);
                    }
                    self.release(slot);
                    return;
                }
            }
        };
        self.slots[slot as usize] = Slot::Read(r);
        self.schedule(next_at, slot);
    }

    /// The database's answer to `r`'s feed query at `now`, as the entry
    /// its load fills (the read's own answer: judged by nothing).
    pub(super) fn query(&mut self, r: &mut Read, now: i64) -> cache_core::envelope::EntryBuf {
        let state = self.views.get(&r.info, &mut self.db);
        let answer = self.db.query_memo(&state.query, now, &mut state.memo);
        r.as_of_excl = now.saturating_add(1);
        let payload = Payload {
            as_of_excl: r.as_of_excl,
            answer,
            view_digest: r.info.digest,
            view_json: &r.info.json,
        };
        payload.to_entry(self.cell.item_bytes, self.cell.declared_padding)
    }

    /// A leader published: waiter `slot` gets `handoff` (its value: served
    /// now; a failure: fail-safe or joins again at once). A waiter answered
    /// at its soft timeout meanwhile only frees its slot.
    pub(super) fn hand_over(&mut self, slot: u32, handoff: Handoff, now: i64) {
        let Some(Slot::Read(r)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if r.flow.step() == Step::Done {
            self.release(slot);
            return;
        }
        r.wait = 0;
        r.flow.handed(handoff);
        if r.flow.step() == Step::Done {
            let Slot::Read(r) = std::mem::replace(&mut self.slots[slot as usize], Slot::Free) else {
                return;
            };
            self.serve(&r, now);
            self.free.push(slot);
        } else {
            self.schedule(now, slot);
        }
    }
}
