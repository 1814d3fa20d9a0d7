//! The table's rules, one test each.

use super::*;
use crate::clock::ManualClock;

fn table() -> (KnownGenerations, ManualClock) {
    let clock = ManualClock::at_unix_millis(1_000);
    (
        KnownGenerations::new(Arc::new(clock.clone()), Duration::from_secs(10)),
        clock,
    )
}

fn bump(key: &str, from: u64, to: u64) -> Notice {
    Notice::Bumped {
        key: key.into(),
        from,
        to,
    }
}

#[test]
fn nothing_is_trusted_without_a_subscription() {
    let (k, _) = table();
    assert_eq!(k.begin_read(), None);
    k.subscribed();
    let e = k.begin_read().unwrap();
    k.learn(e, [("g".to_owned(), 5, 0)]);
    assert_eq!(k.get("g"), Some(5));
    k.lost();
    assert_eq!(k.get("g"), None, "a lost subscription forgets everything");
    k.subscribed();
    assert_eq!(k.get("g"), None, "and a new one starts from nothing");
}

#[test]
fn a_notice_during_a_read_voids_what_it_learnt_of_that_key_only() {
    let (k, _) = table();
    k.subscribed();
    let e = k.begin_read().unwrap();
    k.notice(&Notice::Changed("g".into()));
    k.learn(e, [("g".to_owned(), 5, 0), ("h".to_owned(), 7, 0)]);
    assert_eq!(k.get("g"), None);
    assert_eq!(k.get("h"), Some(7), "no notice named h");
    let e = k.begin_read().unwrap();
    k.notice(&Notice::All);
    k.learn(e, [("h".to_owned(), 8, 0)]);
    assert_eq!(k.get("h"), None, "everything may have changed");
    let e = k.begin_read().unwrap();
    k.lost();
    k.subscribed();
    k.learn(e, [("h".to_owned(), 8, 0)]);
    assert_eq!(k.get("h"), None, "the subscription changed under the read");
}

#[test]
fn a_read_older_than_the_log_learns_nothing() {
    let (k, _) = table();
    k.subscribed();
    let e = k.begin_read().unwrap();
    for i in 0..TOUCHED_LOG {
        k.notice(&Notice::Changed(format!("other{i}")));
    }
    k.learn(e, [("g".to_owned(), 5, 0)]);
    assert_eq!(k.get("g"), Some(5), "the log still reaches back to the read");
    let e = k.begin_read().unwrap();
    for i in 0..=TOUCHED_LOG {
        k.notice(&Notice::Changed(format!("other{i}")));
    }
    k.learn(e, [("g".to_owned(), 6, 0)]);
    assert_eq!(k.get("g"), Some(5), "one notice too many: the read learns nothing");
}

#[test]
fn bumps_extend_known_values_and_forget_on_a_gap() {
    let (k, _) = table();
    k.subscribed();
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5, 0)]);
    k.notice(&bump("g", 5, 6));
    assert_eq!(k.get("g"), Some(6), "extended without asking L2");
    k.notice(&bump("g", 5, 6));
    assert_eq!(k.get("g"), Some(6), "its own echo is old news");
    k.notice(&bump("g", 7, 8));
    assert_eq!(k.get("g"), None, "6→7 was missed: do not guess");
    k.notice(&bump("g", 6, 7));
    assert_eq!(k.get("g"), None, "unknown stays unknown");
}

#[test]
fn a_bump_already_seen_in_l2_keeps_the_value() {
    let (k, clock) = table();
    k.subscribed();
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5, 0)]);
    let at = clock.now() + Duration::from_millis(2);
    k.notice_at(bump("g", 5, 6), at);
    k.notice_at(bump("g", 6, 7), at);
    // A read meanwhile sees L2's truth (7); the notices then arrive.
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 7, 0)]);
    clock.advance(Duration::from_millis(2));
    assert_eq!(
        k.get("g"),
        None,
        "5→6 does not extend 7 and is not a value 7 passed through"
    );
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 7, 0)]);
    k.notice(&bump("g", 6, 7));
    assert_eq!(k.get("g"), Some(7), "a bump to the known value is old news");
}

#[test]
fn delayed_notices_apply_when_due_and_trust_expires() {
    let (k, clock) = table();
    k.subscribed();
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5, 0)]);
    k.notice_at(Notice::Changed("g".into()), clock.now() + Duration::from_millis(2));
    assert_eq!(k.get("g"), Some(5), "not delivered yet");
    clock.advance(Duration::from_millis(2));
    assert_eq!(k.get("g"), None, "delivered");
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 6, 0)]);
    assert_eq!(k.get("g"), Some(6));
    clock.advance(Duration::from_secs(10));
    assert_eq!(k.get("g"), None, "trusted for 10 s only");
}

fn numbered(publisher: u64, seq: u64, n: Notice) -> Vec<u8> {
    Numbered::new(publisher, seq, n).encode()
}

#[test]
fn sources_vouch_for_their_own_generations() {
    let (k, _) = table();
    assert_eq!(k.begin_read(), None, "no source up");
    k.connected(1);
    k.connected(2);
    let e = k.begin_read().unwrap();
    k.learn(
        e,
        [("a".to_owned(), 5, 1), ("b".to_owned(), 6, 2), ("c".to_owned(), 7, 3)],
    );
    assert_eq!(
        (k.get("a"), k.get("b"), k.get("c")),
        (Some(5), Some(6), None),
        "3 is not up"
    );
    k.disconnected(1);
    assert_eq!((k.get("a"), k.get("b")), (None, Some(6)), "only node 1's keys go");
    assert_eq!(k.resyncs(), 1);
    let e = k.begin_read().unwrap();
    k.connected(1);
    k.learn(e, [("a".to_owned(), 5, 1), ("b".to_owned(), 8, 2)]);
    assert_eq!(
        k.get("a"),
        None,
        "read before node 1 came back: it may predate its tracking"
    );
    assert_eq!(k.get("b"), Some(8), "node 2 did not move");
    k.learn(k.begin_read().unwrap(), [("a".to_owned(), 5, 1)]);
    assert_eq!(k.get("a"), Some(5));
    k.connected(2);
    assert_eq!(
        (k.get("a"), k.get("b")),
        (Some(5), None),
        "a flush of node 2 forgets its keys only"
    );
}

#[test]
fn a_skipped_number_forgets_everything() {
    let (k, _) = table();
    k.subscribed();
    k.learn(
        k.begin_read().unwrap(),
        [("g".to_owned(), 5, 0), ("h".to_owned(), 9, 0)],
    );
    k.receive(&numbered(7, 3, bump("g", 5, 6)));
    assert_eq!(k.get("g"), Some(6), "a publisher's first number is taken as it comes");
    k.receive(&numbered(7, 4, bump("g", 6, 7)));
    k.receive(&numbered(8, 1, Notice::Changed("x".into())));
    assert_eq!((k.get("g"), k.get("h"), k.resyncs()), (Some(7), Some(9), 0));
    k.receive(&numbered(7, 4, bump("g", 6, 7)));
    assert_eq!(
        (k.get("g"), k.resyncs()),
        (Some(7), 0),
        "a number seen again changes nothing"
    );
    k.receive(&numbered(7, 6, Notice::Changed("x".into())));
    assert_eq!((k.get("g"), k.get("h"), k.resyncs()), (None, None, 1), "5 is lost");
    k.learn(k.begin_read().unwrap(), [("h".to_owned(), 9, 0)]);
    k.receive(&numbered(7, 7, Notice::Changed("x".into())));
    assert_eq!(k.get("h"), Some(9), "numbering goes on from 6");
    k.receive(&Notice::Changed("h".into()).encode());
    assert_eq!(k.get("h"), None, "an older release's unnumbered notice still applies");
}

#[test]
fn numbers_carry_across_a_dropped_subscription() {
    let (k, _) = table();
    k.subscribed();
    k.receive(&numbered(7, 1, Notice::All));
    k.lost();
    k.subscribed();
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5, 0)]);
    k.receive(&numbered(7, 3, Notice::Changed("x".into())));
    assert_eq!(
        k.get("g"),
        None,
        "2 may have been sent after the subscription came back"
    );
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5, 0)]);
    k.receive(&numbered(7, 4, Notice::Changed("x".into())));
    assert_eq!(k.get("g"), Some(5));
}

#[test]
fn too_many_publishers_start_over_from_nothing() {
    let (k, _) = table();
    k.subscribed();
    for p in 0..PUBLISHERS as u64 {
        k.receive(&numbered(p, 1, Notice::Changed("x".into())));
    }
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5, 0)]);
    assert_eq!(k.resyncs(), 0);
    k.receive(&numbered(u64::MAX, 1, Notice::Changed("x".into())));
    assert_eq!((k.get("g"), k.resyncs()), (None, 1));
}

#[test]
fn delayed_messages_are_checked_when_due() {
    let (k, clock) = table();
    k.subscribed();
    k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5, 0)]);
    let at = clock.now() + Duration::from_millis(2);
    k.receive_at(numbered(1, 1, bump("g", 5, 6)), at);
    k.receive_at(numbered(1, 3, bump("g", 7, 8)), at);
    assert_eq!(k.get("g"), Some(5));
    clock.advance(Duration::from_millis(2));
    assert_eq!((k.get("g"), k.resyncs()), (None, 1));
}
