//! Fail-safe and the loader's timeouts in the flow, step by step (both
//! drivers run these decisions; `backend-locmem/tests/fail_safe.rs` and
//! `sim/tests/db_outage.rs` drive them end to end).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::*;
use crate::envelope::EntryBuf;
use crate::key::Key;
use crate::strategy::stamped::stamp;
use crate::strategy::{by_name, StoredForm, CacheOptions};

const TTL: Duration = Duration::from_secs(60);
const MAX_AGE: Duration = Duration::from_secs(600);

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

fn aside(strategy: &str, options: CacheOptions) -> Aside {
    Aside::new(by_name(strategy, &CacheOptions::default()).unwrap(), options)
}

fn fail_safe() -> CacheOptions {
    CacheOptions::default().with_fail_safe(Some(MAX_AGE))
}

/// An envelope holding `payload`, expiring at `expires_s`.
fn envelope(payload: &[u8], expires_s: u64) -> Bytes {
    EntryBuf::from_payload(payload).seal(Some(at(expires_s)), Duration::ZERO).0
}

/// A flow of `a` planned under `generations`, at Get, with `entry` read
/// by the plan (as `stamped` does) or none.
fn planned(a: &Aside, generations: Vec<u64>, entry: Option<Bytes>) -> ReadFlow {
    let mut f = a.read();
    let mut plan = ReadPlan::new(Key::new("k").unwrap(), Some(TTL)).with_generations(generations);
    if let Some(e) = entry {
        plan = plan.with_entry(Some(e));
    }
    f.planned(Ok(plan));
    f
}

#[test]
fn a_failed_load_is_answered_by_the_expired_entry_only_with_fail_safe_on_and_young_enough() {
    for (options, now, expected) in [
        (fail_safe(), 100, Some(FailSafe::Current)),
        // Expired at 50 s: 599 s later it still qualifies, 600 s later not.
        (fail_safe(), 50 + 599, Some(FailSafe::Current)),
        (fail_safe(), 50 + 600, None),
        (CacheOptions::default(), 100, None),
    ] {
        let a = aside("versioned", options);
        let mut f = planned(&a, vec![], None);
        f.fetched(Ok(Some(envelope(b"old", 50))), at(now), &a);
        assert_eq!(f.has_fallback(), expected.is_some(), "at {now}");
        assert!(!f.join(&mut Flights::new(), ()), "it leads");
        f.loaded(None, Duration::ZERO, at(now));
        let o = *f.outcome();
        assert_eq!(o.fail_safe, expected, "at {now}");
        assert!(o.load_failed && o.loader_called);
        match expected {
            Some(_) => {
                assert_eq!(o.served, Served::FailSafe);
                assert_eq!(f.payload().map(|p| &p[..]), Some(&b"old"[..]));
                assert_eq!(f.handoff(), Handoff::Failed, "waiters are told it failed");
            }
            None => {
                assert_eq!(o.served, Served::Failed);
                assert!(f.payload().is_none());
            }
        }
        assert_eq!(f.step(), Step::Publish);
        let (_, value) = f.publish(&mut Flights::<()>::new());
        assert!(value.is_none(), "a fail-safe answer is never handed out as a load");
        assert_eq!(f.step(), Step::Done, "nor stored");
    }
}

#[test]
fn stamped_prefers_what_it_has_current_stamps_then_old_ones() {
    let a = aside("stamped", fail_safe());
    // Stamps equal to the plan's generations, past its expiry: current.
    let mut f = planned(&a, vec![7], Some(stamp(&[7], &envelope(b"expired", 50))));
    f.fetched(Ok(None), at(100), &a);
    f.join(&mut Flights::new(), ());
    f.loaded(None, Duration::ZERO, at(100));
    assert_eq!(f.outcome().fail_safe, Some(FailSafe::Current));
    // Old stamps (a write bumped the scope), not even expired: stale.
    let mut f = planned(&a, vec![8], Some(stamp(&[7], &envelope(b"bumped", 500))));
    f.fetched(Ok(None), at(100), &a);
    assert!(f.has_fallback());
    f.join(&mut Flights::new(), ());
    f.loaded(None, Duration::ZERO, at(100));
    assert_eq!(f.outcome().fail_safe, Some(FailSafe::Stale));
    assert_eq!(f.payload().map(|p| &p[..]), Some(&b"bumped"[..]));
    // Fenced (a write open, maybe committed): stale, never current.
    let mut f = a.read();
    f.planned(Ok(ReadPlan::new(Key::new("k").unwrap(), Some(TTL))
        .with_generations(vec![7])
        .with_entry(Some(stamp(&[7], &envelope(b"x", 50))))
        .with_bypass(true)));
    assert_eq!(f.step(), Step::Get, "with fail-safe on, the plan's entry is looked at");
    assert!(f.fetch_key().is_none(), "without a round trip: the plan read it");
    f.fetched(Ok(None), at(100), &a);
    assert!(f.has_fallback(), "an entry inside an open write answers a failed load");
    assert!(f.outcome().bypassed);
    f.loaded(None, Duration::ZERO, at(100));
    assert_eq!(f.outcome().served, Served::FailSafe);
    assert_eq!(f.outcome().fail_safe, Some(FailSafe::Stale), "never as current: the write may have committed");
    // Fail-safe off: a fenced read goes straight to the loader, as before.
    let off = aside("stamped", CacheOptions::default());
    let mut f = off.read();
    f.planned(Ok(ReadPlan::new(Key::new("k").unwrap(), Some(TTL))
        .with_generations(vec![7])
        .with_entry(Some(stamp(&[7], &envelope(b"x", 50))))
        .with_bypass(true)));
    assert_eq!(f.step(), Step::Load);
}

#[test]
fn a_fill_is_stored_for_its_ttl_plus_the_max_age_but_expires_after_its_ttl() {
    for (options, stored) in [(fail_safe(), TTL + MAX_AGE), (CacheOptions::default(), TTL)] {
        let a = aside("versioned", options);
        let mut f = planned(&a, vec![], None);
        f.fetched(Ok(None), at(0), &a);
        f.join(&mut Flights::new(), ());
        f.loaded(Some(EntryBuf::from_payload(b"v")), Duration::ZERO, at(10));
        assert_eq!(f.plan().unwrap().ttl, Some(stored), "the store's TTL");
        let entry = crate::strategy::EnvelopeForm.open(f.entry().unwrap()).unwrap();
        assert_eq!(entry.envelope().expires_at, Some(at(10) + TTL), "the logical expiry");
    }
}

#[test]
fn a_soft_timeout_answers_a_leader_whose_load_goes_on_and_refreshes_the_entry() {
    let options = fail_safe().with_load_timeouts(Some(Duration::from_millis(50)), Some(Duration::from_secs(2)));
    let a = aside("versioned", options);
    let mut flights = Flights::new();
    let mut leader = planned(&a, vec![], None);
    leader.fetched(Ok(Some(envelope(b"old", 50))), at(100), &a);
    let mut follower = planned(&a, vec![], None);
    follower.fetched(Ok(Some(envelope(b"old", 50))), at(100), &a);
    let mut bare = planned(&a, vec![], None);
    bare.fetched(Ok(None), at(100), &a);
    assert_eq!(bare.soft_timeout(), None, "no fallback: nothing to answer early with");
    assert!(!leader.join(&mut flights, 1));
    assert!(follower.join(&mut flights, 2));
    assert!(bare.join(&mut flights, 3));
    assert_eq!(leader.soft_timeout(), Some(Duration::from_millis(50)));
    assert_eq!(leader.hard_timeout(), Some(Duration::from_secs(2)));
    leader.soft_timed_out();
    assert!(leader.is_answered() && leader.step() == Step::Load, "answered; the load goes on");
    assert_eq!(leader.payload().map(|p| &p[..]), Some(&b"old"[..]));
    assert_eq!(leader.soft_timeout(), None, "once");
    let answered = *leader.outcome();
    assert!(answered.soft_timed_out && answered.loader_called);
    assert_eq!(answered.fail_safe, Some(FailSafe::Current));
    // The follower times out too, and leaves its waiter behind.
    follower.soft_timed_out();
    assert_eq!((follower.step(), follower.outcome().served), (Step::Done, Served::FailSafe));
    // The load ends: the value goes to whoever still waits, and is stored.
    leader.loaded(Some(EntryBuf::from_payload(b"new")), Duration::from_secs(1), at(101));
    assert_eq!(leader.outcome().served, Served::FailSafe, "its request had its answer");
    let (waiters, value) = leader.publish(&mut flights);
    assert_eq!((waiters, value.as_deref()), (vec![2, 3], Some(&b"new"[..])));
    assert_eq!(leader.handoff(), Handoff::Value(Bytes::from_static(b"new")));
    bare.handed(leader.handoff());
    assert_eq!(bare.outcome().served, Served::Coalesced);
    assert_eq!(leader.step(), Step::Store);
    leader.stored(Ok(()));
    leader.finish(&mut flights);
    let mut m = CacheMetrics::default();
    m.record(&answered);
    assert_eq!((m.fail_safe_served, m.soft_timeouts, m.loader_calls), (1, 1, 1));
    assert_eq!((m.loader_errors, m.background_refreshes), (0, 0), "not known at the answer");
    m.record_late(leader.outcome());
    assert_eq!((m.loader_errors, m.background_refreshes, m.loader_calls), (0, 1, 1));
}

#[test]
fn past_the_hard_timeout_a_load_is_given_up_and_its_waiters_fail_or_fall_back() {
    let options = CacheOptions::default().with_load_timeouts(None, Some(Duration::from_secs(1)));
    for with_fallback in [false, true] {
        let options = if with_fallback {
            options.clone().with_fail_safe(Some(MAX_AGE))
        } else {
            options.clone()
        };
        let a = aside("versioned", options);
        let mut flights = Flights::new();
        let entry = || Ok(Some(envelope(b"old", 50)));
        let (mut leader, mut follower) = (planned(&a, vec![], None), planned(&a, vec![], None));
        leader.fetched(entry(), at(100), &a);
        follower.fetched(entry(), at(100), &a);
        leader.join(&mut flights, 1);
        assert!(follower.join(&mut flights, 2));
        leader.load_timed_out();
        assert_eq!(leader.handoff(), Handoff::TimedOut);
        let (waiters, _) = leader.publish(&mut flights);
        assert_eq!(waiters, vec![2]);
        follower.handed(leader.handoff());
        for f in [&leader, &follower] {
            let o = f.outcome();
            assert!(o.timed_out, "{with_fallback}");
            assert_eq!(f.step(), Step::Done, "the follower does not wait once more");
            if with_fallback {
                assert_eq!(o.served, Served::FailSafe);
            } else {
                assert_eq!(o.served, Served::Failed);
            }
        }
        let mut m = CacheMetrics::default();
        m.record(leader.outcome());
        m.record(follower.outcome());
        assert_eq!(m.load_timeouts, 1, "one load given up");
        assert_eq!(m.failed_reads, if with_fallback { 0 } else { 2 });
        assert_eq!(m.fail_safe_served, if with_fallback { 2 } else { 0 });
        assert!(flights.is_empty());
    }
}

#[test]
fn a_follower_of_a_failed_load_falls_back_or_loads_itself() {
    let a = aside("versioned", fail_safe());
    let mut flights = Flights::new();
    let mut with = planned(&a, vec![], None);
    with.fetched(Ok(Some(envelope(b"old", 50))), at(100), &a);
    let mut without = planned(&a, vec![], None);
    without.fetched(Ok(None), at(100), &a);
    with.handed(Handoff::Failed);
    assert_eq!((with.step(), with.outcome().served), (Step::Done, Served::FailSafe));
    assert!(!with.outcome().loader_called, "no second query of a failing database");
    without.handed(Handoff::Failed);
    assert_eq!(without.step(), Step::Join, "nothing to fall back on: it loads itself, as without fail-safe");
    assert!(!without.join(&mut flights, ()));
    // A leader that went away is not a failure: join again.
    let mut gone = planned(&a, vec![], None);
    gone.fetched(Ok(Some(envelope(b"old", 50))), at(100), &a);
    gone.handed(Handoff::Gone);
    assert_eq!(gone.step(), Step::Join);
}
