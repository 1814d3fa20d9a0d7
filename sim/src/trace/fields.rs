//! The trace's one line parser: a line becomes its fields, borrowed from
//! the text where possible, and typed access to them returns errors that
//! name the file, the line and the field.
//!
//! One parser, not a fast path plus a careful one: the fields are parsed
//! into a small borrowed form (no allocation per key or unescaped string,
//! the cost that once justified a second parser), and every check is made
//! once, here. Duplicate fields are an error rather than "last one wins".

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use cache_core::{Scope, View};
use chrono::DateTime;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::format::{Event, LineNo, MAX_SCOPE_BYTES, MAX_T_US, MAX_VIEW_SCOPE_BYTES, VIEW_PARAMS};
use crate::calendar::parse_wire_instant;
use crate::db::{code_of, ItemState, Write, WriteKind, STATUSES, WORK_TYPES};
use crate::error::{Error, Result};

/// A JSON string, borrowed from the line unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A field's value. Objects nested in a field are skipped: no trace field
/// holds one, so only their presence matters (for the error message).
#[derive(Debug)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object,
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::U64(n) => write!(f, "{n}"),
            Json::I64(n) => write!(f, "{n}"),
            Json::F64(n) => write!(f, "{n}"),
            // Long strings are cut: the message names the field anyway.
            Json::Str(s) if s.len() > 64 => {
                let cut = (0..=64).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                write!(f, "{:?}… ({} bytes)", &s[..cut], s.len())
            }
            Json::Str(s) => write!(f, "{s:?}"),
            Json::Array(a) => write!(f, "an array of {}", a.len()),
            Json::Object => f.write_str("an object"),
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(Json::Null)
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(Json::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
                Json::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
                Ok(Json::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(Json::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(Json::I64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(Json::F64(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(Json::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Json::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Json::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Json::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// A line's top-level object: its fields in order, and the first name that
/// appeared twice.
struct Object<'a> {
    fields: Vec<(Cow<'a, str>, Json<'a>)>,
    duplicate: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, Json<'de>)> = Vec::with_capacity(16);
                let mut duplicate = None;
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    let value = map.next_value::<Json<'de>>()?;
                    if duplicate.is_none() && fields.iter().any(|(n, _)| *n == name) {
                        duplicate = Some(name);
                    } else {
                        fields.push((name, value));
                    }
                }
                Ok(Object { fields, duplicate })
            }
        }
        d.deserialize_map(V)
    }
}

/// One parsed line, with typed field access whose errors name the file,
/// the line and the field.
pub(crate) struct Fields<'a, 'f> {
    file: &'f Path,
    line: u64,
    fields: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl<'a, 'f> Fields<'a, 'f> {
    /// Parses `text`, line `line` of `file`: it must be one JSON object
    /// without duplicate field names.
    pub(crate) fn parse(file: &'f Path, line: u64, text: &'a str) -> Result<Self> {
        let obj: Object<'a> = serde_json::from_str(text).map_err(|e| Error::Trace {
            file: file.to_owned(),
            line,
            field: "<line>".into(),
            message: if e.is_data() {
                format!("expected a JSON object: {e}")
            } else {
                format!("not JSON: {e}")
            },
        })?;
        let fields = Fields {
            file,
            line,
            fields: obj.fields,
        };
        if let Some(name) = obj.duplicate {
            return Err(fields.err(&name, "appears twice on the line"));
        }
        Ok(fields)
    }

    /// An error about `field` of this line.
    pub(crate) fn err(&self, field: &str, message: impl Into<String>) -> Error {
        Error::Trace {
            file: self.file.to_owned(),
            line: self.line,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The field's value; `None` when absent or `null`.
    fn get(&self, f: &str) -> Option<&Json<'a>> {
        self.fields
            .iter()
            .find(|(n, _)| n == f)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Json::Null))
    }

    pub(crate) fn u64(&self, f: &str) -> Result<u64> {
        match self.get(f) {
            None => Err(self.err(f, "missing")),
            Some(Json::U64(n)) => Ok(*n),
            Some(v) => Err(self.err(f, format!("expected an integer in 0..={}, found {v}", u64::MAX))),
        }
    }

    pub(crate) fn opt_u64(&self, f: &str) -> Result<Option<u64>> {
        match self.get(f) {
            None => Ok(None),
            Some(_) => self.u64(f).map(Some),
        }
    }

    /// An integer in `range`, `default` when absent.
    pub(crate) fn u64_in(&self, f: &str, range: std::ops::RangeInclusive<u64>, default: u64) -> Result<u64> {
        let v = self.opt_u64(f)?.unwrap_or(default);
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(self.err(f, format!("{v} is outside {}..={}", range.start(), range.end())))
        }
    }

    fn u32_or(&self, f: &str, default: u32) -> Result<u32> {
        let v = self.u64_in(f, 0..=u64::from(u32::MAX), u64::from(default))?;
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    }

    pub(crate) fn str(&self, f: &str) -> Result<&str> {
        match self.get(f) {
            None => Err(self.err(f, "missing")),
            Some(Json::Str(s)) => Ok(s),
            Some(v) => Err(self.err(f, format!("expected a string, found {v}"))),
        }
    }

    pub(crate) fn opt_str(&self, f: &str) -> Result<Option<&str>> {
        match self.get(f) {
            None => Ok(None),
            Some(_) => self.str(f).map(Some),
        }
    }

    /// A string of 1..=[`MAX_SCOPE_BYTES`] bytes: scope names and view
    /// parameters, which end up in cache keys.
    fn short_str(&self, f: &str, s: &str) -> Result<()> {
        if s.is_empty() {
            Err(self.err(f, "must not be empty"))
        } else if s.len() > MAX_SCOPE_BYTES {
            Err(self.err(f, format!("{} bytes, at most {MAX_SCOPE_BYTES} allowed", s.len())))
        } else {
            Ok(())
        }
    }

    fn view(&self) -> Result<View> {
        let scopes = match self.get("scopes") {
            None => return Err(self.err("scopes", "missing")),
            Some(Json::Array(a)) if !a.is_empty() => {
                let mut total = 0usize;
                let mut scopes = Vec::with_capacity(a.len());
                for v in a {
                    let Json::Str(s) = v else {
                        return Err(self.err("scopes", format!("expected strings, found {v}")));
                    };
                    self.short_str("scopes", s)?;
                    total += s.len();
                    if total > MAX_VIEW_SCOPE_BYTES {
                        return Err(self.err(
                            "scopes",
                            format!("more than {MAX_VIEW_SCOPE_BYTES} bytes of scope names in one view"),
                        ));
                    }
                    scopes.push(Scope::new(s.as_ref()).map_err(|e| self.err("scopes", e.to_string()))?);
                }
                scopes
            }
            Some(v) => return Err(self.err("scopes", format!("expected a non-empty array, found {v}"))),
        };
        let tz = self.opt_str("timeZone")?;
        if let Some(z) = tz {
            // Checked even when the instants carry offsets: the writer
            // spells them in the zone, so an unknown one could not be read
            // back.
            cache_core::wire::parse_zone(z).map_err(|e| self.err("timeZone", e.to_string()))?;
        }
        let start = parse_wire_instant(self.str("start")?, tz).map_err(|e| self.err("start", e.to_string()))?;
        let end = parse_wire_instant(self.str("end")?, tz).map_err(|e| self.err("end", e.to_string()))?;
        let range = cache_core::TimeRange::new(start, end).map_err(|e| self.err("end", e.to_string()))?;
        let mut view = View::new(scopes, range).map_err(|e| self.err("scopes", e.to_string()))?;
        for p in VIEW_PARAMS {
            if let Some(v) = self.opt_str(p)? {
                self.short_str(p, v)?;
                view = view.with_param(p, v);
            }
        }
        Ok(view)
    }

    fn instant(&self, f: &str) -> Result<i64> {
        let s = self.str(f)?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .map_err(|e| self.err(f, format!("{s:?} is not an RFC 3339 instant: {e}")))
    }

    fn code(&self, f: &str, table: &[&str]) -> Result<u8> {
        let s = self.str(f)?;
        code_of(table, s).ok_or_else(|| self.err(f, format!("{s:?} is not one of {table:?}")))
    }

    /// The line as an event. `processes` is the header's count: `process`
    /// must be below it.
    pub(crate) fn event(&self, processes: u32) -> Result<Event> {
        let t_us = self.u64("t_us")?;
        if t_us > MAX_T_US {
            return Err(self.err(
                "t_us",
                format!("{t_us} is outside 0..={MAX_T_US} (a trace spans at most 3,660 days)"),
            ));
        }
        let process = self.u32_or("process", 0)?;
        if process >= processes {
            return Err(self.err(
                "process",
                format!("{process} but the header declares {processes} processes"),
            ));
        }
        let user = self.opt_u64("user")?.unwrap_or(0);
        let line = LineNo(self.line);
        let kind = match self.str("type")? {
            "read" => {
                return Ok(Event::Read {
                    t_us,
                    process,
                    user,
                    tab: self.u32_or("tab", 0)?,
                    view: self.view()?,
                    line,
                })
            }
            "evict_control" => {
                return Ok(Event::EvictControl {
                    t_us,
                    process,
                    view: self.view()?,
                    line,
                })
            }
            "load" => WriteKind::Load,
            "create" => WriteKind::Create,
            "edit" => WriteKind::Edit,
            "delete" => WriteKind::Delete,
            other => {
                return Err(self.err(
                    "type",
                    format!("unknown event type {other:?} (read, create, edit, delete, load, evict_control)"),
                ))
            }
        };
        let state = if kind == WriteKind::Delete {
            None
        } else {
            let start_us = self.instant("start")?;
            let end_us = self.instant("end")?;
            if end_us <= start_us {
                return Err(self.err("end", "must be after start"));
            }
            Some(ItemState {
                start_us,
                end_us,
                work_type: self.code("work_type", &WORK_TYPES)?,
                status: self.code("status", &STATUSES)?,
            })
        };
        let scope = self.str("scope")?;
        self.short_str("scope", scope)?;
        Ok(Event::Write {
            t_us,
            process,
            user,
            write: Write {
                kind,
                item: self.u64("item")?,
                scope: scope.to_owned(),
                state,
            },
            line,
        })
    }
}
