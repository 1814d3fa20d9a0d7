//! Model-based test: random operation sequences, with a manual clock moving
//! between them, run against the in-process backend and against a plain
//! `BTreeMap` model of the contract; every answer must agree.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backend_locmem::LocmemBackend;
use cache_core::backend::{checked_counter_add, parse_counter};
use cache_core::{Backend, Bytes, Error, Key, ManualClock};
use proptest::prelude::*;

// Hash-tagged keys exercise the prefix index's narrowing by tag (`{x}` vs
// `{xy}`, an empty tag, a tag the prefix leaves open).
const KEYS: &[&str] = &[
    "a", "b", "c", "a:1", "a:2", "b:1", "t:{x}:1", "t:{x}:2", "t:{xy}:1", "t:{}:1", "u:{x}:1",
];

#[derive(Debug, Clone)]
enum Step {
    Get(usize),
    GetMany(Vec<usize>),
    Set(usize, Vec<u8>, Option<u64>),
    SetMany(Vec<(usize, Vec<u8>)>, Option<u64>),
    Add(usize, Vec<u8>, Option<u64>),
    Incr(usize, u64),
    Delete(usize),
    DeleteMany(Vec<usize>),
    DeletePrefix(&'static str),
    Advance(u64),
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u64..20).prop_map(|n| n.to_string().into_bytes()),
        Just(b"x".to_vec()),
        Just(Vec::new()),
        Just((i64::MAX as u64 - 2).to_string().into_bytes()),
    ]
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), Just(Some(0)), (1u64..5000).prop_map(Some)]
}

fn step() -> impl Strategy<Value = Step> {
    let k = 0..KEYS.len();
    prop_oneof![
        k.clone().prop_map(Step::Get),
        proptest::collection::vec(k.clone(), 0..4).prop_map(Step::GetMany),
        (k.clone(), value(), ttl()).prop_map(|(k, v, t)| Step::Set(k, v, t)),
        (proptest::collection::vec((k.clone(), value()), 0..3), ttl()).prop_map(|(e, t)| Step::SetMany(e, t)),
        (k.clone(), value(), ttl()).prop_map(|(k, v, t)| Step::Add(k, v, t)),
        (k.clone(), prop_oneof![Just(0u64), 1u64..4, Just(u64::MAX)]).prop_map(|(k, d)| Step::Incr(k, d)),
        k.clone().prop_map(Step::Delete),
        proptest::collection::vec(k, 0..4).prop_map(Step::DeleteMany),
        prop_oneof![
            Just("a"),
            Just("a:"),
            Just("b:"),
            Just("z"),
            Just("t:{x}:"),
            Just("t:{x}"),
            Just("t:{x"),
            Just("t:{"),
            Just("t:{}:"),
            Just("t:{xy}:1"),
            Just("u:{x}:1"),
        ]
        .prop_map(Step::DeletePrefix),
        (0u64..3000).prop_map(Step::Advance),
    ]
}

/// The contract, as simply as it can be written.
#[derive(Default)]
struct Model {
    map: BTreeMap<&'static str, (Vec<u8>, Option<SystemTime>)>,
}

impl Model {
    fn live(&self, k: &str, now: SystemTime) -> Option<&Vec<u8>> {
        self.map
            .get(k)
            .filter(|(_, exp)| exp.is_none_or(|t| now < t))
            .map(|(v, _)| v)
    }
    fn expiry(now: SystemTime, ttl: Option<u64>) -> Option<SystemTime> {
        ttl.map(|ms| now + Duration::from_millis(ms))
    }
    fn set(&mut self, k: &'static str, v: Vec<u8>, ttl: Option<u64>, now: SystemTime) {
        if ttl == Some(0) {
            self.map.remove(k);
        } else {
            self.map.insert(k, (v, Self::expiry(now, ttl)));
        }
    }
    fn delete(&mut self, k: &str, now: SystemTime) -> bool {
        let live = self.live(k, now).is_some();
        self.map.remove(k);
        live
    }
}

#[derive(Debug, PartialEq)]
enum Answer {
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Unit,
    Bool(bool),
    Count(u64),
    Counter(Result<u64, &'static str>),
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::NotFound { .. } => "not_found",
        Error::NotACounter { .. } => "not_a_counter",
        Error::Overflow { .. } => "overflow",
        _ => "other",
    }
}

fn model_step(m: &mut Model, step: &Step, now: SystemTime) -> Answer {
    match step {
        Step::Get(k) => Answer::Value(m.live(KEYS[*k], now).cloned()),
        Step::GetMany(ks) => Answer::Values(ks.iter().map(|k| m.live(KEYS[*k], now).cloned()).collect()),
        Step::Set(k, v, t) => {
            m.set(KEYS[*k], v.clone(), *t, now);
            Answer::Unit
        }
        Step::SetMany(es, t) => {
            for (k, v) in es {
                m.set(KEYS[*k], v.clone(), *t, now);
            }
            Answer::Unit
        }
        Step::Add(k, v, t) => {
            if *t == Some(0) || m.live(KEYS[*k], now).is_some() {
                Answer::Bool(false)
            } else {
                m.set(KEYS[*k], v.clone(), *t, now);
                Answer::Bool(true)
            }
        }
        Step::Incr(k, d) => Answer::Counter(match m.live(KEYS[*k], now).cloned() {
            None => Err("not_found"),
            Some(v) => match parse_counter(&v) {
                None => Err("not_a_counter"),
                Some(n) => match checked_counter_add(n, *d) {
                    None => Err("overflow"),
                    Some(next) => {
                        let exp = m.map[KEYS[*k]].1;
                        m.map.insert(KEYS[*k], (next.to_string().into_bytes(), exp));
                        Ok(next)
                    }
                },
            },
        }),
        Step::Delete(k) => Answer::Bool(m.delete(KEYS[*k], now)),
        Step::DeleteMany(ks) => Answer::Count(ks.iter().map(|k| u64::from(m.delete(KEYS[*k], now))).sum()),
        Step::DeletePrefix(p) => {
            let hit: Vec<&'static str> = m.map.keys().copied().filter(|k| k.starts_with(p)).collect();
            Answer::Count(hit.into_iter().map(|k| u64::from(m.delete(k, now))).sum())
        }
        Step::Advance(_) => Answer::Unit,
    }
}

async fn real_step(b: &dyn Backend, clock: &ManualClock, step: &Step) -> Answer {
    let key = |k: &usize| Key::new(KEYS[*k]).unwrap();
    let ttl = |t: &Option<u64>| t.map(Duration::from_millis);
    match step {
        Step::Get(k) => Answer::Value(b.get(&key(k)).await.unwrap().map(|v| v.to_vec())),
        Step::GetMany(ks) => {
            let keys: Vec<Key> = ks.iter().map(key).collect();
            Answer::Values(
                b.get_many(&keys)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|v| v.map(|v| v.to_vec()))
                    .collect(),
            )
        }
        Step::Set(k, v, t) => {
            b.set(&key(k), Bytes::from(v.clone()), ttl(t)).await.unwrap();
            Answer::Unit
        }
        Step::SetMany(es, t) => {
            let es: Vec<(Key, Bytes)> = es.iter().map(|(k, v)| (key(k), Bytes::from(v.clone()))).collect();
            b.set_many(&es, ttl(t)).await.unwrap();
            Answer::Unit
        }
        Step::Add(k, v, t) => Answer::Bool(b.add(&key(k), Bytes::from(v.clone()), ttl(t)).await.unwrap()),
        Step::Incr(k, d) => Answer::Counter(b.incr(&key(k), *d).await.map_err(|e| kind(&e))),
        Step::Delete(k) => Answer::Bool(b.delete(&key(k)).await.unwrap()),
        Step::DeleteMany(ks) => Answer::Count(b.delete_many(&ks.iter().map(key).collect::<Vec<_>>()).await.unwrap()),
        Step::DeletePrefix(p) => Answer::Count(b.delete_prefix(p).await.unwrap()),
        Step::Advance(ms) => {
            clock.advance(Duration::from_millis(*ms));
            Answer::Unit
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn locmem_matches_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let clock = ManualClock::at_unix_millis(1_700_000_000_000);
        let backend = LocmemBackend::builder().clock(Arc::new(clock.clone())).build();
        let mut model = Model::default();
        for (i, step) in steps.iter().enumerate() {
            let now = cache_core::Clock::now(&clock);
            let want = model_step(&mut model, step, now);
            let got = rt.block_on(real_step(&backend, &clock, step));
            prop_assert_eq!(got, want, "step {} of {:?}", i, steps);
        }
    }
}
