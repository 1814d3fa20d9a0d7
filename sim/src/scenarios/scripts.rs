//! The hazard scripts: one hand-placed timeline per hazard of the spec,
//! and `stampede`.

use super::*;

pub(super) fn script(name: &str) -> Result<Script> {
    let oct6 = date(2025, 10, 6)?;
    let oct15 = date(2025, 10, 15)?;
    let month = CalendarView::DayGridMonth;
    match name {
        "seed-october-2025" => {
            let mut s = Script::new(1);
            s.load_month("cal:1", 1, 20)?;
            s.load_month("cal:2", 101, 10)?;
            let oct = view(&["cal:1"], month, oct6, 1, &PH)?;
            let week = view(&["cal:1"], CalendarView::TimeGridWeek, oct6, 1, &PH)?;
            let other = view(&["cal:2"], month, oct6, 0, &PH)?;
            s.read(0, 0, 1, &oct);
            s.read(100, 0, 2, &other);
            s.read(2_000, 0, 1, &oct);
            s.read(3_000, 0, 1, &week);
            s.read(4_000, 0, 2, &other);
            // The incident: delete the item on Oct 15, the modal closes, refresh.
            s.write(10_000, WriteKind::Delete, 10, "cal:1", None);
            s.read(11_000, 0, 1, &oct);
            s.read(12_000, 0, 1, &week);
            s.read(30_000, 0, 1, &oct);
            // A create and an edit, each followed by a refresh (seed's scenarios 2 and 3).
            s.write(
                40_000,
                WriteKind::Create,
                50,
                "cal:1",
                Some(item_at(date(2025, 10, 20)?, 14, 1, 0)),
            );
            s.read(41_000, 0, 1, &oct);
            s.write(50_000, WriteKind::Edit, 11, "cal:1", Some(item_at(oct15, 16, 2, 3)));
            s.read(51_000, 0, 1, &oct);
            s.read(52_000, 0, 2, &other);
            Ok(s)
        }
        "stale-set-race" => {
            let mut s = Script::new(1);
            s.load_month("cal:1", 1, 12)?;
            let oct = view(&["cal:1"], month, oct6, 1, &PH)?;
            // Reader: plan at 0, get at 0.3 ms (miss), DB query at 0.6 ms,
            // store at 8.6 ms. The delete commits at 2 ms and is invalidated
            // at 3 ms, between the reader's query and its store.
            s.read_us(0, 0, 1, &oct);
            s.write_us(2_000, 0, WriteKind::Delete, 5, "cal:1", None);
            s.read(20, 0, 2, &oct);
            s.read(1_000, 0, 1, &oct);
            s.read(5_000, 0, 2, &oct);
            // Second round on a warm cache: a fresh fill racing an edit.
            s.write(30_000, WriteKind::Edit, 6, "cal:1", Some(item_at(oct15, 10, 0, 2)));
            s.read(31_000, 0, 1, &oct);
            s.read(33_000, 0, 1, &oct);
            Ok(s)
        }
        "version-eviction" => {
            let mut s = Script::new(1);
            s.load_month("cal:1", 1, 12)?;
            let oct = view(&["cal:1"], month, oct6, 1, &PH)?;
            s.read(0, 0, 1, &oct); // fills generation 0 (naive: no version key yet)
            s.read(1_000, 0, 1, &oct);
            s.write(5_000, WriteKind::Delete, 7, "cal:1", None);
            s.read(6_000, 0, 1, &oct); // new generation: miss, fresh
            s.read(7_000, 0, 1, &oct);
            s.evict(10_000, &oct);
            s.read(11_000, 0, 1, &oct); // naive: back at v0, the pre-delete entry
            s.read(12_000, 0, 1, &oct);
            s.read(20_000, 0, 1, &oct);
            Ok(s)
        }
        "shared-calendar" => {
            let mut s = Script::new(1);
            s.load_month("team:1", 1, 20)?;
            let formats = [
                PH,
                WireFormat::Utc,
                WireFormat::Named("Asia/Manila".into()),
                WireFormat::Offset { seconds: 9 * 3600 },
                PH,
                PH,
            ];
            let mut views = Vec::new();
            for (u, fmt) in formats.iter().enumerate() {
                let own = format!("cal:{}", u + 1);
                let mut v = view(&[own.as_str(), "team:1"], month, oct6, (u % 2) as u8, fmt)?;
                if u == 5 {
                    v = v.with_param("status", "open");
                }
                views.push(v);
            }
            for (u, v) in views.iter().enumerate() {
                s.read(u as u64 * 100, 0, u as u64 + 1, v);
                s.read(2_000 + u as u64 * 100, 0, u as u64 + 1, v);
            }
            // User 1 deletes a team item (status "open": visible in the filtered feed too).
            s.write(10_000, WriteKind::Delete, 4, "team:1", None);
            s.write(15_000, WriteKind::Edit, 7, "team:1", Some(item_at(oct15, 11, 1, 0)));
            for (u, v) in views.iter().enumerate() {
                s.read(16_000 + u as u64 * 100, 0, u as u64 + 1, v);
                s.read(40_000 + u as u64 * 100, 0, u as u64 + 1, v);
            }
            Ok(s)
        }
        "multi-process-locmem" => {
            let mut s = Script::new(3);
            s.load_month("cal:1", 1, 15)?;
            let oct = view(&["cal:1"], month, oct6, 1, &PH)?;
            for p in 0..3u32 {
                s.read(u64::from(p) * 100, p, 1, &oct);
                s.read(2_000 + u64::from(p) * 100, p, 1, &oct);
            }
            s.write(10_000, WriteKind::Delete, 3, "cal:1", None); // committed and invalidated on process 0
            for p in 0..3u32 {
                s.read(11_000 + u64::from(p) * 100, p, 1, &oct);
                s.read(30_000 + u64::from(p) * 100, p, 1, &oct);
            }
            Ok(s)
        }
        "timezone-variants" => {
            let mut s = Script::new(1);
            s.load_month("cal:1", 1, 15)?;
            let variants = [
                view(&["cal:1"], month, oct6, 1, &PH)?,
                view(&["cal:1"], month, oct6, 1, &WireFormat::Utc)?,
                view(&["cal:1"], month, oct6, 1, &WireFormat::Named("Asia/Manila".into()))?,
            ];
            // The daylight-saving case: cal:2 is viewed from New York and
            // Berlin, whose offsets change inside the October grid (Berlin on
            // Oct 26, New York on Nov 2), so the ends carry different offsets.
            //
            // What range-expansion misses here: it guesses midnights in one
            // fixed `home_offset` (+08:00 in the simulator). It misses every
            // view below, because none is written in +08:00; and it would miss
            // the month grids and the week of the change even in an app whose
            // home offset is New York's summer offset (-04:00), because one
            // fixed offset can only name ranges whose two ends carry that same
            // offset, while these end at -05:00 (+01:00 for Berlin). The
            // `timeZone=America/New_York` view carries a parameter no guess
            // includes. (`sim/tests/timezones.rs` checks both claims.)
            s.load_month("cal:2", 101, 15)?;
            s.write(
                0,
                WriteKind::Load,
                150,
                "cal:2",
                Some(item_at(date(2025, 11, 1)?, 10, 0, 0)),
            );
            let (ny, berlin) = (
                WireFormat::Local(chrono_tz::America::New_York),
                WireFormat::Local(chrono_tz::Europe::Berlin),
            );
            let nov2 = date(2025, 11, 2)?;
            let dst = [
                view(&["cal:2"], month, oct6, 0, &ny)?, // 2025-09-28T00:00:00-04:00 .. 2025-11-09T00:00:00-05:00
                view(&["cal:2"], CalendarView::TimeGridWeek, nov2, 0, &ny)?, // the week of the change
                view(&["cal:2"], month, oct6, 1, &berlin)?, // 2025-09-29T00:00:00+02:00 .. 2025-11-10T00:00:00+01:00
                view(
                    &["cal:2"],
                    month,
                    oct6,
                    0,
                    &WireFormat::Named("America/New_York".into()),
                )?,
            ];
            for (i, v) in variants.iter().chain(&dst).enumerate() {
                s.read(i as u64 * 100, 0, i as u64 + 1, v);
                s.read(2_000 + i as u64 * 100, 0, i as u64 + 1, v);
            }
            s.write(10_000, WriteKind::Delete, 8, "cal:1", None);
            s.write(
                12_000,
                WriteKind::Edit,
                9,
                "cal:1",
                Some(item_at(date(2025, 10, 21)?, 9, 0, 0)),
            );
            // A write in the month of the change: an item moves from Nov 1 to
            // Monday Nov 3, shown by every cal:2 view above.
            s.write(
                12_800,
                WriteKind::Edit,
                150,
                "cal:2",
                Some(item_at(date(2025, 11, 3)?, 22, 0, 0)),
            );
            for (i, v) in variants.iter().chain(&dst).enumerate() {
                s.read(13_000 + i as u64 * 100, 0, i as u64 + 1, v);
                s.read(20_000 + i as u64 * 100, 0, i as u64 + 1, v);
            }
            Ok(s)
        }
        "item-moved" => {
            let mut s = Script::new(1);
            s.load_month("cal:1", 1, 12)?;
            s.write(0, WriteKind::Load, 77, "cal:1", Some(item_at(oct15, 10, 0, 0)));
            let oct = view(&["cal:1"], month, oct6, 1, &PH)?;
            let week = view(&["cal:1"], CalendarView::TimeGridWeek, oct15, 1, &PH)?;
            let dec = view(&["cal:1"], month, date(2025, 12, 10)?, 1, &PH)?;
            for (i, v) in [&oct, &week, &dec].into_iter().enumerate() {
                s.read(i as u64 * 100, 0, 1, v);
                s.read(2_000 + i as u64 * 100, 0, 1, v);
            }
            s.write(
                10_000,
                WriteKind::Edit,
                77,
                "cal:1",
                Some(item_at(date(2025, 12, 10)?, 10, 0, 0)),
            );
            for (i, v) in [&oct, &week, &dec].into_iter().enumerate() {
                s.read(11_000 + i as u64 * 100, 0, 1, v);
                s.read(25_000 + i as u64 * 100, 0, 1, v);
            }
            Ok(s)
        }
        SERVER_EVICTION => {
            let mut s = Script::new(1);
            s.load_month("cal:1", 1, 10)?;
            s.load_month("team:1", 101, 10)?;
            let both = view(&["cal:1", "team:1"], month, oct6, 1, &PH)?;
            s.read(0, 0, 1, &both);
            s.read(2_000, 0, 1, &both);
            s.read(4_000, 0, 1, &both);
            // LRU: the entry was just read, the index and generations were
            // touched only at the first miss.
            s.evict(5_000, &both);
            s.write(10_000, WriteKind::Delete, 104, "team:1", None);
            s.read(11_000, 0, 1, &both);
            s.read(20_000, 0, 1, &both);
            Ok(s)
        }
        STAMPEDE => stampede(),
        TWO_TIER => multi_process_two_tier(),
        FREEZE => freeze(),
        WRITER_CRASH => writer_crash(),
        DB_OUTAGE => db_outage(),
        other => Err(Error::UnknownScenario(other.to_owned())),
    }
}

/// See [`STAMPEDE`]'s entry in [`SCENARIOS`]. Timings against the default
/// latencies and the default 300 s TTL: process `p` warms its entry at
/// `p` ms (stored ~8.6 ms later, so it expires at ~300.009 s + `p` ms);
/// background readers come every ms per process from 299.5 s to 300.5 s;
/// the burst lands 300.015–300.017 s, after every process's entry expired.
fn stampede() -> Result<Script> {
    let mut s = Script::new(STAMPEDE_PROCESSES);
    s.load_month("team:1", 1, 30)?;
    let v = view(&["team:1"], CalendarView::DayGridMonth, date(2025, 10, 6)?, 1, &PH)?;
    let procs = u64::from(STAMPEDE_PROCESSES);
    for p in 0..procs {
        s.read_us(p * 1_000, p as u32, p + 1, &v);
    }
    let mut user = procs + 1;
    for t_ms in 299_500..300_500u64 {
        for p in 0..procs {
            // Staggered within the ms so processes do not move in lockstep.
            s.read_us(t_ms * 1_000 + p * 250, p as u32, user, &v);
            user += 1;
        }
    }
    for i in 0..STAMPEDE_BURST {
        let t_us = 300_015_000 + i * 2_000 / STAMPEDE_BURST;
        s.read_us(t_us, (i % procs) as u32, user, &v);
        user += 1;
    }
    Ok(s)
}
