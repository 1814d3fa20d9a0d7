//! Key formatting the strategies share: instants and dates in keys, view
//! parts, per-scope control keys, and the key-index encoding. Reading and
//! bumping generations is in `generations.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SecondsFormat, Timelike};

use crate::error::Result;
use crate::key::{Key, KeyBuilder};
use crate::view::{TimeRange, View};

/// RFC 3339 with the client's own offset kept (`+08:00`; UTC as `Z`), so
/// the same instant sent with different offsets gives different keys, as it
/// does for a real feed endpoint keyed on the raw request. The slow path of
/// [`push_instant`] and the definition its fast path must match.
pub(crate) fn fmt_instant(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Writes two decimal digits of `n` (`< 100`) at `buf[at..at + 2]`.
fn put2(buf: &mut [u8], at: usize, n: u32) {
    // `n < 100`, so both digits fit in a `u8`.
    buf[at] = b'0' + (n / 10 % 10) as u8;
    buf[at + 1] = b'0' + (n % 10) as u8;
}

/// Writes `YYYY-MM-DD` at `buf[..10]`; `year` must be in `0..=9999`.
fn put_date(buf: &mut [u8], year: u32, month: u32, day: u32) {
    put2(buf, 0, year / 100);
    put2(buf, 2, year % 100);
    buf[4] = b'-';
    put2(buf, 5, month);
    buf[7] = b'-';
    put2(buf, 8, day);
}

/// [`fmt_instant`] written by hand into `buf` for the common case: whole
/// seconds, a year in `0..=9999` and an offset of whole minutes (what every
/// real client sends). `None` for anything else (fractional or leap
/// seconds, out-of-range years, offsets with seconds), which the caller
/// formats with chrono.
///
/// Why by hand: chrono's formatter allocates a `String` and goes through the
/// `fmt` machinery; with the rest of the key building it was ~15–20% of a
/// simulated request. The output follows chrono's `write_rfc3339` with
/// `SecondsFormat::AutoSi` and `use_z`: no fraction when the nanoseconds are
/// 0, `Z` exactly when the offset is 0, otherwise `±HH:MM`. A test compares
/// it with chrono over many instants and offsets.
pub(crate) fn fmt_instant_fast<'a>(t: &DateTime<FixedOffset>, buf: &'a mut [u8; 25]) -> Option<&'a str> {
    let local = t.naive_local();
    let offset = t.offset().local_minus_utc();
    // Chrono rounds an offset with seconds to minutes; leave that to it.
    if local.nanosecond() != 0 || offset % 60 != 0 {
        return None;
    }
    let year = year_0_9999(local.year())?;
    put_date(&mut buf[..], year, local.month(), local.day());
    buf[10] = b'T';
    put2(&mut buf[..], 11, local.hour());
    buf[13] = b':';
    put2(&mut buf[..], 14, local.minute());
    buf[16] = b':';
    put2(&mut buf[..], 17, local.second());
    let len = if offset == 0 {
        buf[19] = b'Z';
        20
    } else {
        buf[19] = if offset < 0 { b'-' } else { b'+' };
        // |offset| < 24 h for a `FixedOffset`, so hours < 24.
        let minutes = offset.unsigned_abs() / 60;
        put2(&mut buf[..], 20, minutes / 60);
        buf[22] = b':';
        put2(&mut buf[..], 23, minutes % 60);
        25
    };
    std::str::from_utf8(&buf[..len]).ok()
}

/// Appends `t` as a user part, formatted as [`fmt_instant`] does.
pub(crate) fn push_instant(b: &mut KeyBuilder, t: &DateTime<FixedOffset>) {
    let mut buf = [0u8; 25];
    match fmt_instant_fast(t, &mut buf) {
        // Digits, `-`, `+`, `T`, `Z` and `:` (at 13, 16 and, with an
        // offset, 22), of which only `:` is escaped: written escaped
        // directly, the same bytes as `b.user(s)` (a test checks).
        Some(s) => {
            let out = b.begin_part();
            let (hms, offset) = s.split_at(s.len().min(22));
            for (i, run) in [hms.get(..13), hms.get(14..16), hms.get(17..)].into_iter().enumerate() {
                if i > 0 {
                    out.push_str("%3A");
                }
                out.push_str(run.unwrap_or_default());
            }
            if let Some(minutes) = offset.strip_prefix(':') {
                out.push_str("%3A");
                out.push_str(minutes);
            }
        }
        None => {
            b.user(&fmt_instant(t));
        }
    }
}

/// Appends `d` as `d.to_string()` would (`2025-10-01`; `+10000-01-01`
/// outside `0..=9999`), by hand for the usual years (the same reason as
/// [`fmt_instant_fast`]).
pub(crate) fn write_date(out: &mut String, d: NaiveDate) {
    match year_0_9999(d.year()) {
        Some(year) => {
            let mut buf = [0u8; 10];
            put_date(&mut buf, year, d.month(), d.day());
            out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
        }
        // Writing to a `String` cannot fail.
        None => drop(write!(out, "{d}")),
    }
}

/// Appends `d` as a user part, equal to `b.user(&d.to_string())`: a date
/// is made of digits, `-` and `+`, none of which [`encode_part`] escapes, so
/// it is written directly.
///
/// [`encode_part`]: crate::key::encode_part
pub(crate) fn push_date(b: &mut KeyBuilder, d: NaiveDate) {
    write_date(b.begin_part(), d);
}

/// Appends `YYYY-MM` (`format!("{year:04}-{month:02}")`); `year` must be in
/// `0..=9999` and `month` in `1..=12`.
pub(crate) fn write_year_month(out: &mut String, year: u32, month: u32) {
    let mut buf = [0u8; 7];
    put2(&mut buf, 0, year / 100);
    put2(&mut buf, 2, year % 100);
    buf[4] = b'-';
    put2(&mut buf, 5, month);
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

/// `year` as a `u32` when it is in `0..=9999`, the range whose RFC 3339 and
/// `Display` forms are four plain digits.
pub(crate) fn year_0_9999(year: i32) -> Option<u32> {
    u32::try_from(year).ok().filter(|y| *y <= 9999)
}

/// Appends two lowercase hex digits per byte (`format!("{b:02x}")` each).
pub(crate) fn push_hex_lower(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0F)]));
    }
}

/// The user-controlled parts of a view's key, appended to `b`: start, end,
/// then each parameter as name, value. Start and end have fixed positions and
/// the rest come in pairs, so two different views never give the same part
/// list.
pub(crate) fn push_view_parts(b: &mut KeyBuilder, range: &TimeRange, params: &BTreeMap<String, String>) {
    push_instant(b, &range.start());
    push_instant(b, &range.end());
    for (name, value) in params {
        b.user(name).user(value);
    }
}

/// [`push_view_parts`] of `view`'s own range and parameters.
pub(crate) fn push_view(b: &mut KeyBuilder, view: &View) {
    push_view_parts(b, &view.range, &view.params);
}

/// A builder sized for a view key: the trusted head (namespace, tag, a hash
/// tag and a generation per scope) plus two instants and the parameters,
/// with room for some escaping, so the buffer rarely grows.
pub(crate) fn view_key_builder(namespace: &str, view: &View) -> KeyBuilder {
    let scopes: usize = view.scopes.iter().map(|s| s.as_str().len() + 28).sum();
    let params: usize = view.params.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    KeyBuilder::with_capacity(namespace.len() + 8 + scopes + 2 * 32 + params + 16)
}

/// `ns:tag:{scope}:suffix`: a per-scope control key (a generation, a
/// version, a key index).
pub(crate) fn scope_key(namespace: &str, tag: &str, scope: &crate::view::Scope, suffix: &str) -> Result<Key> {
    let mut b = KeyBuilder::with_capacity(namespace.len() + scope.as_str().len() + suffix.len() + 16);
    b.trusted(namespace)
        .trusted(tag)
        .hash_tag(scope.as_str())
        .trusted(suffix);
    b.build()
}

/// `ns:tag:{scope1}:{scope2}:…:<view>`: the view key of the strategies
/// without generations.
pub(crate) fn scoped_view_key(namespace: &str, tag: &str, view: &View) -> Result<Key> {
    let mut b = view_key_builder(namespace, view);
    b.trusted(namespace).trusted(tag);
    for scope in &view.scopes {
        b.hash_tag(scope.as_str());
    }
    push_view(&mut b, view);
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{format_counter, Backend};
    use crate::clock::{Clock, ManualClock};
    use crate::hash::fnv1a;
    use crate::view::{Change, Scope};
    use bytes::Bytes;
    use proptest::strategy::Strategy as _;
    use sha2::Digest;
    use std::sync::Arc;

    /// A backend that records every key a strategy touches and answers
    /// deterministically, so the strategies' key bytes can be pinned.
    #[derive(Debug)]
    struct Recorder {
        prefix_delete: bool,
        log: std::sync::Mutex<Vec<String>>,
    }

    impl Recorder {
        fn new(prefix_delete: bool) -> Self {
            Recorder {
                prefix_delete,
                log: std::sync::Mutex::new(Vec::new()),
            }
        }
        fn note(&self, op: &str, key: &str) {
            self.log.lock().unwrap().push(format!("{op} {key}"));
        }
        fn value(key: &Key) -> Bytes {
            format_counter(fnv1a(key.as_str().as_bytes()) % 1_000_000_007)
        }
    }

    #[async_trait::async_trait]
    impl Backend for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn capabilities(&self) -> crate::backend::Capabilities {
            crate::backend::Capabilities::new().with_prefix_delete(self.prefix_delete)
        }
        async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
            self.note("get", key.as_str());
            Ok(Some(Self::value(key)))
        }
        async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
            keys.iter().for_each(|k| self.note("get_many", k.as_str()));
            Ok(keys.iter().map(|k| Some(Self::value(k))).collect())
        }
        async fn set(&self, key: &Key, value: Bytes, _ttl: crate::backend::Ttl) -> Result<()> {
            self.note("set", &format!("{} = {:?}", key.as_str(), value));
            Ok(())
        }
        async fn set_many(&self, entries: &[(Key, Bytes)], _ttl: crate::backend::Ttl) -> Result<()> {
            for (k, v) in entries {
                self.note("set_many", &format!("{} = {:?}", k.as_str(), v));
            }
            Ok(())
        }
        async fn add(&self, key: &Key, _value: Bytes, _ttl: crate::backend::Ttl) -> Result<bool> {
            self.note("add", key.as_str());
            Ok(true)
        }
        async fn incr(&self, key: &Key, _delta: u64) -> Result<u64> {
            self.note("incr", key.as_str());
            Ok(1)
        }
        async fn delete(&self, key: &Key) -> Result<bool> {
            self.note("delete", key.as_str());
            Ok(true)
        }
        async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
            keys.iter().for_each(|k| self.note("delete_many", k.as_str()));
            Ok(keys.len() as u64)
        }
        async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
            self.note("delete_prefix", prefix);
            Ok(0)
        }
    }

    fn dt(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn golden_views() -> Vec<View> {
        let s = |n: &str| Scope::new(n).unwrap();
        let r = |a: &str, b: &str| TimeRange::new(dt(a), dt(b)).unwrap();
        vec![
            View::new(
                [s("cal:7")],
                r("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00"),
            )
            .unwrap(),
            View::new([s("cal:7")], r("2025-09-28T16:00:00Z", "2025-11-09T16:00:00Z"))
                .unwrap()
                .with_param("work_type", "Work Type*")
                .with_param("status", "done"),
            View::new(
                [s("b{1}"), s("a b"), s("日本:\u{a0}x")],
                r("2024-02-29T23:59:59.5-05:30", "2024-03-02T00:00:00.000001+14:00"),
            )
            .unwrap()
            .with_param("tz", "Asia/Shanghai")
            .with_param("q%", "[x]?\\\t\n\u{85}é"),
            View::new(
                [s("z")],
                r("0000-01-01T00:00:00Z", "0000-03-01T00:00:00.000000001+00:00"),
            )
            .unwrap(),
            View::new(
                [s("z")],
                r("9999-12-01T00:00:00.123456789+01:00", "9999-12-31T23:59:59+00:00"),
            )
            .unwrap(),
        ]
    }

    fn golden_changes() -> Vec<Change> {
        let r = |a: &str, b: &str| TimeRange::new(dt(a), dt(b)).unwrap();
        vec![
            Change::new(
                Scope::new("cal:7").unwrap(),
                [
                    r("2025-10-15T09:00:00+08:00", "2025-10-15T10:00:00+08:00"),
                    r("2025-12-30T23:00:00-05:30", "2026-01-02T01:00:00-05:30"),
                ],
            )
            .unwrap(),
            Change::new(
                Scope::new("a b").unwrap(),
                [r("2024-02-28T00:00:00Z", "2024-03-01T00:00:00.5Z")],
            )
            .unwrap(),
        ]
    }

    /// Every key every strategy derives for a fixed set of views and
    /// changes, pinned by digest: key building was rewritten for speed and
    /// must keep every byte (a changed key orphans every cached entry).
    /// (Last change: `stamped`'s generations became fenced and moved from
    /// `:gen` to `:fgen`, its bucket generations from `bucketed`'s `ns:b:`
    /// to its own `ns:s:`; every other strategy's section of the log is
    /// byte-identical to before.)
    #[tokio::test]
    async fn strategy_keys_are_pinned() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix_millis(1_759_708_800_000));
        let combos = vec![
            std::collections::BTreeMap::new(),
            [
                ("status".to_owned(), "a:b c".to_owned()),
                ("work_type".to_owned(), "x*".to_owned()),
            ]
            .into_iter()
            .collect(),
        ];
        let mut log = Vec::new();
        for bucket in [super::super::BucketSize::Month, super::super::BucketSize::Week] {
            let options = super::super::CacheOptions::default()
                .with_clock(clock.clone())
                .with_seed(7)
                .with_namespace("feed")
                .with_bucket(bucket)
                .with_filter_combinations(combos.clone())
                .with_home_offset(chrono::FixedOffset::east_opt(8 * 3600).unwrap());
            for name in super::super::NAMES {
                if bucket == super::super::BucketSize::Week && name != "bucketed" {
                    continue;
                }
                let strategy = super::super::by_name(name, &options).unwrap();
                for prefix_delete in [false, true] {
                    let backend = Recorder::new(prefix_delete);
                    for view in golden_views() {
                        let plan = strategy.plan_read(&backend, &view).await.unwrap();
                        backend.note("plan", plan.key.as_str());
                        strategy
                            .store(&backend, &view, &plan, Bytes::from_static(b"v"))
                            .await
                            .unwrap();
                        for k in strategy.control_keys(&view) {
                            backend.note("control", k.as_str());
                        }
                    }
                    for change in golden_changes() {
                        strategy.invalidate(&backend, &change).await.unwrap();
                    }
                    log.push(format!("== {name} {bucket:?} prefix_delete={prefix_delete}"));
                    log.extend(backend.log.lock().unwrap().drain(..));
                }
            }
        }
        // A few keys spelled out, so a reader sees the layout being pinned.
        for expected in [
            "plan feed:v:{cal%3A7}:g919054036:2025-09-29T00%3A00%3A00+08%3A00:2025-11-10T00%3A00%3A00+08%3A00",
            "plan feed:wc:{a%20b}:d:{b%7B1%7D}:{日本%3A%C2%A0x}:2024-02-29T23%3A59%3A59.500-05%3A30:\
             2024-03-02T00%3A00%3A00.000001+14%3A00:q%25:%5Bx%5D%3F%5C%09%0A%C2%85é:tz:Asia/Shanghai",
            "plan feed:b:{cal%3A7}:g1f98b4cddd954c32f139b64cc4166288:2025-09-29T00%3A00%3A00+08%3A00:\
             2025-11-10T00%3A00%3A00+08%3A00",
            "get_many feed:b:{z}:gen:w-0001-12-27",
            "delete_prefix feed:wc:{cal%3A7}:d:",
        ] {
            assert!(log.iter().any(|l| l == expected), "missing {expected}");
        }
        let all = log.join("\n");
        // To see what changed after a deliberate key change, write the log
        // out (`KEYS_GOLDEN_DUMP=/tmp/keys.txt`) before and after, and diff.
        if let Ok(path) = std::env::var("KEYS_GOLDEN_DUMP") {
            std::fs::write(path, &all).unwrap();
        }
        let digest: String = sha2::Sha256::digest(all.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            digest,
            "aac85231d75686399706661586f60e944cf4186b454324dc707fe9e52513c0fe"
        );
    }

    /// What `push_instant` must write: chrono's own formatting, encoded.
    fn chrono_instant(t: &DateTime<FixedOffset>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// The fast formatter, when it answers, equals chrono; `push_instant`
    /// always equals `user(chrono)`.
    fn check_instant(t: &DateTime<FixedOffset>) -> bool {
        let expected = chrono_instant(t);
        let mut buf = [0u8; 25];
        let fast = fmt_instant_fast(t, &mut buf).map(str::to_owned);
        if let Some(fast) = &fast {
            assert_eq!(fast, &expected, "{t:?}");
        }
        let mut b = KeyBuilder::new();
        b.trusted("ns");
        push_instant(&mut b, t);
        let mut reference = KeyBuilder::new();
        reference.trusted("ns").user(&expected);
        assert_eq!(b.as_str(), reference.as_str(), "{t:?}");
        fast.is_some()
    }

    fn at(secs: i64, nanos: u32, offset_secs: i32) -> Option<DateTime<FixedOffset>> {
        let offset = FixedOffset::east_opt(offset_secs)?;
        Some(DateTime::from_timestamp(secs, nanos)?.with_timezone(&offset))
    }

    #[test]
    fn fast_instants_match_chrono_on_edges() {
        let fast = |s: &str| check_instant(&dt(s));
        // The common cases take the fast path.
        for s in [
            "2025-09-29T00:00:00+08:00",
            "2025-09-28T16:00:00Z",
            "2025-09-28T16:00:00+00:00",
            "2025-09-28T16:00:00-00:00",
            "2025-10-05T23:59:59-05:30",
            "2025-10-05T12:34:56+14:00",
            "2025-10-05T12:34:56-12:00",
            "2025-10-05T12:34:56+05:45",
            "2025-10-05T12:34:56+23:59",
            "2025-10-05T12:34:56-23:59",
            "2024-02-29T00:00:00Z",
            "2024-02-29T23:59:59+01:00",
            "2000-02-29T12:00:00Z",
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",
            "1970-01-01T00:00:00Z",
        ] {
            assert!(fast(s), "{s} should take the fast path");
        }
        // Fractional seconds fall back to chrono (and still match).
        for s in [
            "2025-10-05T12:34:56.5+08:00",
            "2025-10-05T12:34:56.123Z",
            "2025-10-05T12:34:56.000001-05:30",
            "2025-10-05T12:34:56.000000001Z",
            "2025-10-05T12:34:56.999999999+14:00",
        ] {
            assert!(!fast(s), "{s} has a fraction");
        }
        // Years outside 0..=9999 (in local time), offsets with seconds, a
        // leap second: chrono's path.
        let slow = [
            at(-62_167_219_201, 0, 0),     // -0001-12-31T23:59:59Z
            at(-62_167_219_200, 0, -3600), // year 0 in UTC, -0001 locally
            at(253_402_300_800, 0, 0),     // +10000-01-01
            at(253_402_300_799, 0, 3600),  // 9999 in UTC, 10000 locally
            at(1_759_708_800, 0, 30),      // +00:00:30 rounds to +00:01
            at(1_759_708_800, 0, -29),     // rounds to -00:00
            at(1_759_708_800, 0, 5 * 3600 + 45 * 60 + 59),
            at(1_759_708_799, 1_000_000_000, 0), // leap second
            at(1_759_708_799, 1_500_000_000, 3600),
        ];
        for t in slow {
            let t = t.unwrap();
            assert!(!check_instant(&t), "{t:?} should fall back");
        }
    }

    #[test]
    fn dates_and_bucket_parts_match_display() {
        for (y, m, d) in [
            (2025, 10, 1),
            (2024, 2, 29),
            (0, 1, 1),
            (9999, 12, 31),
            (-1, 12, 31),
            (10_000, 1, 1),
            (-44, 3, 15),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let mut b = KeyBuilder::new();
            b.trusted("ns");
            push_date(&mut b, date);
            let mut reference = KeyBuilder::new();
            reference.trusted("ns").user(&date.to_string());
            assert_eq!(b.as_str(), reference.as_str());
            if let Some(year) = year_0_9999(y) {
                let mut s = String::new();
                write_year_month(&mut s, year, m);
                assert_eq!(s, format!("{y:04}-{m:02}"));
            }
        }
        let mut s = String::new();
        push_hex_lower(&mut s, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(s, "000fa5ff");
    }

    proptest::proptest! {
        #[test]
        fn fast_instants_match_chrono_anywhere(
            // Every second of years 0 to 9999, and a margin either side.
            secs in -62_198_755_200i64..=253_433_923_200,
            nanos in proptest::prop_oneof![4 => proptest::strategy::Just(0u32), 1 => 0u32..1_000_000_000],
            offset in proptest::prop_oneof![
                2 => proptest::strategy::Just(0i32),
                4 => (-24 * 60 + 1..24 * 60i32).prop_map(|m| m * 60),
                1 => -86_399i32..86_400,
            ],
        ) {
            if let Some(t) = at(secs, nanos, offset) {
                check_instant(&t);
            }
        }

        #[test]
        fn fast_instants_match_chrono_near_now(
            secs in 1_500_000_000i64..2_000_000_000,
            quarter_hours in -48i32..=56,
        ) {
            let t = at(secs, 0, quarter_hours * 15 * 60).unwrap();
            proptest::prop_assert!(check_instant(&t), "whole seconds and minutes take the fast path");
        }
    }
}
