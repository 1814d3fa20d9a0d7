use super::*;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn range(q: &str) -> TimeRange {
    cache_core::fullcalendar::FeedQuery::parse(q, &[]).unwrap().range()
}

#[test]
fn shown_days_follow_the_clients_offset() {
    assert_eq!(
        shown_days(range(
            "start=2025-09-29T00:00:00%2B08:00&end=2025-11-10T00:00:00%2B08:00"
        )),
        (d("2025-09-29"), d("2025-11-10"))
    );
    // An end at 12:00 still shows that day.
    assert_eq!(
        shown_days(range("start=2025-10-01T00:00:00Z&end=2025-10-02T12:00:00Z")),
        (d("2025-10-01"), d("2025-10-03"))
    );
}

#[tokio::test]
async fn feed_overlaps_filters_and_sharing() {
    let db = Db::open(None).unwrap();
    let oct = range("start=2025-09-29T00:00:00Z&end=2025-11-10T00:00:00Z");
    let titles = |rows: Vec<(Item, Calendar)>| rows.into_iter().map(|(i, _)| i.title).collect::<Vec<_>>();
    let alice = db.calendars_of("alice").await.unwrap();
    let ids: Vec<i64> = alice.iter().map(|c| c.id).collect();
    assert_eq!(ids, [1, 3]);
    let all = titles(db.feed(&ids, oct, FeedFilter::default()).await.unwrap());
    assert!(all.contains(&"Design review".to_owned()) && !all.contains(&"Invoice export".to_owned()));
    let bugs = FeedFilter {
        work_type: Some("bug"),
        status: None,
    };
    let bugs = titles(db.feed(&ids, oct, bugs).await.unwrap());
    assert_eq!(bugs, ["Fix login redirect", "Calendar cache bug"]);
    // One day: the item ending (exclusive) on 2025-10-09 shows on the
    // 8th, not on the 9th.
    let eighth = range("start=2025-10-08T00:00:00Z&end=2025-10-09T00:00:00Z");
    let ninth = range("start=2025-10-09T00:00:00Z&end=2025-10-10T00:00:00Z");
    assert_eq!(
        titles(db.feed(&[3], eighth, FeedFilter::default()).await.unwrap()),
        ["Design review"]
    );
    assert!(db.feed(&[3], ninth, FeedFilter::default()).await.unwrap().is_empty());
    assert!(matches!(db.calendars_of("mallory").await, Err(DbError::UnknownUser(_))));
}

fn none() -> BeforeCommit {
    Box::new(|_, _| {})
}

/// Two handles on one file (two processes' connections) writing at
/// once: every write commits (WAL, busy timeout, `BEGIN IMMEDIATE`:
/// none fails with `SQLITE_BUSY`), and the commit log numbers them in
/// one order, each bracket after the previous one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calendar.db");
    let (a, b) = (Db::open(Some(&path)).unwrap(), Db::open(Some(&path)).unwrap());
    let input = |n: usize| ItemInput {
        calendar_id: 3,
        title: format!("write {n}"),
        work_type: "chore".into(),
        status: "open".into(),
        start: d("2025-10-27"),
        end: d("2025-10-29"),
    };
    let writer = |db: Db, from: usize| async move {
        for n in from..from + 40 {
            db.create("alice", input(n), none()).await.unwrap();
        }
    };
    let (x, y) = tokio::join!(tokio::spawn(writer(a.clone(), 0)), tokio::spawn(writer(b.clone(), 100)));
    x.unwrap();
    y.unwrap();
    let log = b.history().await.unwrap();
    assert_eq!(log.len(), 80);
    assert!(log
        .windows(2)
        .all(|w| w[0].seq < w[1].seq && w[0].before_commit_us <= w[1].before_commit_us));
    let mode: String = a
        .conn
        .lock()
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// `shows` and `feed_order` are the feed query's condition and order in
/// Rust: on every item of a month of varied items, filters and client
/// offsets, they select and order exactly what the SQL does.
#[tokio::test]
async fn shows_agrees_with_the_feed_query() {
    let db = Db::open(None).unwrap();
    let mut items = Vec::new();
    for n in 0..60u32 {
        let start = d("2025-09-25") + chrono::Days::new(u64::from(n % 40));
        let input = ItemInput {
            calendar_id: 1 + i64::from(n % 3),
            title: format!("item {n}"),
            work_type: WORK_TYPES[(n % 3) as usize].to_owned(),
            status: STATUSES[(n / 3 % 3) as usize].to_owned(),
            start,
            end: start + chrono::Days::new(1 + u64::from(n % 4)),
        };
        let user = if input.calendar_id == 2 { "bob" } else { "alice" };
        items.push(db.create(user, input, none()).await.unwrap().0);
    }
    let all: Vec<Item> = {
        let c = db.conn.lock().unwrap();
        let mut st = c.prepare(&format!("SELECT {ITEM_COLUMNS} FROM items i")).unwrap();
        st.query_map([], item_from_row).unwrap().map(Result::unwrap).collect()
    };
    for query in [
        "start=2025-09-29T00:00:00%2B08:00&end=2025-11-10T00:00:00%2B08:00",
        "start=2025-10-05T00:00:00-04:00&end=2025-10-12T00:00:00-04:00",
        "start=2025-10-08T00:00:00Z&end=2025-10-09T00:00:00Z",
        "start=2025-10-08T00:00:00Z&end=2025-10-09T12:00:00Z",
    ] {
        let days = shown_days(range(query));
        for (work_type, status) in [
            (None, None),
            (Some("bug"), None),
            (None, Some("done")),
            (Some("chore"), Some("open")),
        ] {
            let filter = FeedFilter { work_type, status };
            let sql: Vec<Item> = db
                .feed(&[1, 2, 3], range(query), filter.clone())
                .await
                .unwrap()
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            let mut rust: Vec<Item> = all.iter().filter(|i| shows(i, days, &filter)).cloned().collect();
            rust.sort_by(feed_order);
            assert_eq!(sql, rust, "{query} {filter:?}");
            assert!(
                !sql.is_empty() || work_type.is_some(),
                "{query}: a check that selects nothing proves little"
            );
        }
    }
    assert!(items.len() == 60);
}

#[tokio::test]
async fn writes_check_membership_and_return_old_and_new() {
    let db = Db::open(None).unwrap();
    let input = ItemInput {
        calendar_id: 3,
        title: " Offsite ".into(),
        work_type: "chore".into(),
        status: "open".into(),
        start: d("2025-10-27"),
        end: d("2025-10-29"),
    };
    let (created, first) = db.create("bob", input.clone(), none()).await.unwrap();
    assert_eq!(created.title, "Offsite");
    // Alice shares the Team calendar: she sees Bob's item.
    assert_eq!(db.item("alice", created.id).await.unwrap(), created);
    // Bob may not write into Alice's calendar, nor see her items.
    let into_alice = ItemInput {
        calendar_id: 1,
        ..input.clone()
    };
    assert!(matches!(
        db.create("bob", into_alice, none()).await,
        Err(DbError::Forbidden(1))
    ));
    assert!(matches!(db.item("bob", 2).await, Err(DbError::NotFound)));
    let moved = ItemInput {
        start: d("2025-11-03"),
        end: d("2025-11-04"),
        ..input.clone()
    };
    let (old, new, second) = db.update("alice", created.id, moved, none()).await.unwrap();
    assert_eq!((old.start, new.start), (d("2025-10-27"), d("2025-11-03")));
    let (gone, third) = db.delete("alice", created.id, none()).await.unwrap();
    assert_eq!(gone, new);
    // The commit log: every committed write, in commit order, bracketed
    // by the instants around its COMMIT; refused writes left nothing.
    let log = db.history().await.unwrap();
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [first.seq, second.seq, third.seq]);
    assert_eq!(
        log.iter().map(|e| e.op).collect::<Vec<_>>(),
        [Op::Create, Op::Update, Op::Delete]
    );
    assert_eq!(log[0].item.as_ref(), Some(&created));
    assert_eq!(log[1].item.as_ref(), Some(&new));
    assert_eq!(log[2].item, None);
    for (entry, commit) in log.iter().zip([first, second, third]) {
        assert_eq!(entry.before_commit_us, commit.before_us);
        assert!(commit.before_us <= commit.after_us);
    }
    assert!(first.after_us <= second.before_us && second.after_us <= third.before_us);
    assert!(matches!(db.item("alice", created.id).await, Err(DbError::NotFound)));
    let backwards = ItemInput {
        end: d("2025-10-01"),
        ..input
    };
    assert!(matches!(
        db.create("bob", backwards, none()).await,
        Err(DbError::Invalid(_))
    ));
}
