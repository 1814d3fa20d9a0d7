//! The shape of the run's traffic, as far as the hazards care: does it
//! show zones that make keys vary (daylight saving, named zones, several
//! offsets), and calendars shared between viewers? Seen once, as the
//! trace is read ([`ShapeCell::probe`]), at the cost of a few comparisons per
//! read until both questions are answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cache_core::View;

use crate::error::Result;
use crate::trace::{Event, EventIter};

/// What the traffic showed. Each field holds the first example found,
/// worded for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shape {
    /// App processes the trace declares.
    pub processes: u32,
    /// Why the zone hazard applies: a named zone, a range whose ends
    /// carry different offsets, or several offsets; `None`: one offset
    /// only.
    pub zones: Option<String>,
    /// Why the shared-calendar hazard applies: a feed over several
    /// calendars, or one calendar read by several users; `None`: every
    /// calendar is read by one user, alone.
    pub shared: Option<String>,
}

/// Collects a [`Shape`] while reading.
#[derive(Debug, Default)]
struct Observer {
    shape: Shape,
    /// The first offset seen (`None` before any read); `timeZone=UTC`
    /// counts as `Z`, a named zone is caught before.
    offset: Option<i32>,
    /// Per single-calendar scope, the first user that read it.
    readers: HashMap<String, u64>,
}

impl Observer {
    fn saw_read(&mut self, user: u64, view: &View) {
        if self.shape.zones.is_none() {
            self.shape.zones = zones_of(view, &mut self.offset);
        }
        if self.shape.shared.is_some() {
            return;
        }
        if view.scopes.len() > 1 {
            let names: Vec<&str> = view.scopes.iter().map(|s| s.as_str()).collect();
            self.shape.shared = Some(format!("a feed spans several calendars ({})", names.join(", ")));
        } else if let Some(scope) = view.scopes.first() {
            match self.readers.get(scope.as_str()) {
                Some(&first) if first != user => {
                    self.shape.shared = Some(format!("calendar {} is read by several users", scope.as_str()));
                    self.readers = HashMap::new();
                }
                Some(_) => {}
                None => {
                    self.readers.insert(scope.as_str().to_owned(), user);
                }
            }
        }
    }
}

/// Why `view` makes the zone hazard apply, if it does; `first` is the
/// offset of the first read seen (set by the first call).
fn zones_of(view: &View, first: &mut Option<i32>) -> Option<String> {
    if let Some(zone) = view.params.get("timeZone").filter(|z| !z.eq_ignore_ascii_case("UTC")) {
        return Some(format!("a feed names its zone (timeZone={zone})"));
    }
    let (start, end) = (view.range.start(), view.range.end());
    let (a, b) = (start.offset().local_minus_utc(), end.offset().local_minus_utc());
    if a != b {
        return Some(format!(
            "a feed's ends carry different offsets (daylight saving: {} .. {})",
            start.to_rfc3339(),
            end.to_rfc3339()
        ));
    }
    match *first {
        None => {
            *first = Some(a);
            None
        }
        Some(f) if f != a => Some(format!(
            "clients send several offsets ({} and {})",
            offset_text(f),
            offset_text(a)
        )),
        Some(_) => None,
    }
}

fn offset_text(seconds: i32) -> String {
    if seconds == 0 {
        return "Z".to_owned();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let m = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Where a probe ([`ShapeCell::probe`]) leaves what it saw.
#[derive(Debug, Clone, Default)]
pub struct ShapeCell(Arc<(Mutex<Observer>, AtomicBool)>);

impl ShapeCell {
    /// An empty cell for a trace of `processes` app processes.
    pub fn new(processes: u32) -> Self {
        let cell = ShapeCell::default();
        if let Ok(mut o) = cell.0 .0.lock() {
            o.shape.processes = processes;
        }
        cell
    }

    /// What was seen so far.
    pub fn shape(&self) -> Shape {
        self.0 .0.lock().map(|o| o.shape.clone()).unwrap_or_default()
    }

    /// `events`, unchanged, with every read shown to this cell on the way.
    pub fn probe(&self, events: EventIter) -> EventIter {
        let cell = self.clone();
        Box::new(events.inspect(move |e: &Result<Event>| {
            let (observer, answered) = &*cell.0;
            if answered.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(Event::Read { user, view, .. }) = e {
                if let Ok(mut o) = observer.lock() {
                    o.saw_read(*user, view);
                    if o.shape.zones.is_some() && o.shape.shared.is_some() {
                        answered.store(true, Ordering::Relaxed);
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::{Scope, TimeRange};

    fn view(scopes: &[&str], start: &str, end: &str) -> View {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        View::new(
            scopes.iter().map(|s| Scope::new(*s).unwrap()),
            TimeRange::new(t(start), t(end)).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn one_offset_and_private_calendars_show_nothing() {
        let mut o = Observer::default();
        let v = view(&["cal:1"], "2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00");
        o.saw_read(1, &v);
        o.saw_read(1, &v);
        o.saw_read(
            2,
            &view(&["cal:2"], "2025-09-29T00:00:00+08:00", "2025-10-06T00:00:00+08:00"),
        );
        assert_eq!((o.shape.zones.as_deref(), o.shape.shared.as_deref()), (None, None));
        o.saw_read(2, &v);
        assert_eq!(
            o.shape.shared.as_deref(),
            Some("calendar cal:1 is read by several users")
        );
        o.saw_read(1, &view(&["cal:1"], "2025-09-28T16:00:00Z", "2025-11-09T16:00:00Z"));
        assert_eq!(
            o.shape.zones.as_deref(),
            Some("clients send several offsets (+08:00 and Z)")
        );
    }

    #[test]
    fn daylight_saving_named_zones_and_shared_feeds_are_seen() {
        let dst = view(&["a"], "2025-09-28T00:00:00-04:00", "2025-11-09T00:00:00-05:00");
        assert!(zones_of(&dst, &mut None).unwrap().contains("daylight saving"));
        let named =
            view(&["a"], "2025-09-28T00:00:00Z", "2025-11-09T00:00:00Z").with_param("timeZone", "Europe/Berlin");
        assert!(zones_of(&named, &mut None).unwrap().contains("timeZone=Europe/Berlin"));
        let utc = view(&["a"], "2025-09-28T00:00:00Z", "2025-11-09T00:00:00Z").with_param("timeZone", "UTC");
        assert_eq!(zones_of(&utc, &mut None), None);
        let mut o = Observer::default();
        o.saw_read(
            1,
            &view(&["cal:1", "team:1"], "2025-09-28T00:00:00Z", "2025-11-09T00:00:00Z"),
        );
        assert!(o.shape.shared.unwrap().contains("cal:1, team:1"));
    }
}
