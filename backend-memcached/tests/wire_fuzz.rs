//! Fuzzing by property test: the one memcached reply this crate parses
//! itself, `stats settings` (the meta protocol is parsed by the `memcache`
//! crate), mutated from real replies: byte flips, truncations, splices and
//! inserted lines. The parser never panics, accepts only complete replies,
//! and what it reads is what the reply says.
//!
//! CI runs proptest's default 256 cases from the fixed seed 15; a longer
//! run on new inputs: `PROPTEST_CASES=100000 PROPTEST_RNG_SEED=$RANDOM
//! cargo test --release -p backend-memcached --test wire_fuzz`.
#![allow(missing_docs)]

use backend_memcached::settings::{parse_item_size_max, ItemSize};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// Proptest's configuration from the environment, the seed fixed at 15
/// unless `PROPTEST_RNG_SEED` is given.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if matches!(c.rng_seed, RngSeed::Random) {
        c.rng_seed = RngSeed::Fixed(15);
    }
    c
}

const REPLIES: &[&[u8]] = &[
    b"STAT maxbytes 67108864\r\nSTAT maxconns 1024\r\nSTAT item_size_max 1048576\r\nSTAT memory_file (null)\r\nEND\r\n",
    b"STAT item_size_max 524288\r\nEND\r\n",
    b"END\r\n",
    b"ERROR\r\n",
    b"SERVER_ERROR out of memory\r\n",
];

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let n = REPLIES.len();
    let pick = move |i: usize| REPLIES[i % n].to_vec();
    prop_oneof![
        (0..n).prop_map(pick),
        (
            0..n,
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
        )
            .prop_map(move |(i, flips)| {
                let mut b = pick(i);
                for (at, byte) in flips {
                    let at = at.index(b.len());
                    b[at] = byte;
                }
                b
            }),
        (0..n, any::<prop::sample::Index>()).prop_map(move |(i, at)| {
            let mut b = pick(i);
            b.truncate(at.index(b.len() + 1));
            b
        }),
        (0..n, 0..n, any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(move |(i, j, a, c)| {
            let (x, y) = (pick(i), pick(j));
            let mut b = x[..a.index(x.len())].to_vec();
            b.extend_from_slice(&y[c.index(y.len())..]);
            b
        }),
        (
            0..n,
            any::<prop::sample::Index>(),
            "STAT [a-z_]{1,14} [0-9a-z() ]{0,24}\r\n"
        )
            .prop_map(move |(i, at, line)| {
                let mut b = pick(i);
                let at = at.index(b.len() + 1);
                b.splice(at..at, line.into_bytes());
                b
            }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn stats_replies_never_panic_and_are_read_faithfully(reply in mutated()) {
        match parse_item_size_max(&reply) {
            Ok(ItemSize::Bytes(n)) => {
                prop_assert!(n > 0);
                // The number read is on an item_size_max line of the reply,
                // and the reply is complete.
                let text = std::str::from_utf8(&reply).unwrap();
                let wanted = format!("STAT item_size_max {n}\r\n");
                prop_assert!(text.contains(&wanted), "{text:?}");
                prop_assert!(text.ends_with("END\r\n"), "{text:?}");
            }
            Ok(ItemSize::Unknown) => {
                let text = std::str::from_utf8(&reply).unwrap();
                prop_assert!(text.ends_with("\r\n"));
            }
            Ok(_) => prop_assert!(false, "a new ItemSize variant"),
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }
}

#[test]
fn a_valid_reply_with_any_item_size_reads_back() {
    proptest!(config(), |(n in 1u64..u64::MAX, before in 0usize..5)| {
        let mut reply = String::new();
        for i in 0..before {
            reply.push_str(&format!("STAT other_{i} {i}\r\n"));
        }
        reply.push_str(&format!("STAT item_size_max {n}\r\nEND\r\n"));
        prop_assert_eq!(parse_item_size_max(reply.as_bytes()), Ok(ItemSize::Bytes(n)));
    });
}
