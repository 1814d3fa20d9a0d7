//! Which access-log requests are writes: method + path patterns mapped to
//! the create, edit or delete of an item, from a small TOML file
//! (`--routes FILE`) or [`Routes::defaults`] (common REST shapes).
//!
//! ```toml
//! [[route]]
//! method = ["POST"]
//! path = "/api/work-items"
//! action = "create"
//!
//! [[route]]
//! method = ["PUT", "PATCH"]
//! path = "/api/calendars/{scope}/items/{id}"
//! action = "edit"
//! ```
//!
//! A path pattern is `/`-separated segments: a literal, `{id}` (the item's
//! id), `{scope}` (the item's calendar), or any other `{name}` (one segment,
//! ignored). The query string is not part of the match. The first rule that
//! matches wins.

use std::path::Path;

use serde::Deserialize;

use crate::db::WriteKind;
use crate::error::{Error, Result};

/// What a matched write request does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteMatch {
    /// Create, edit or delete.
    pub kind: WriteKind,
    /// The `{id}` segment, if the pattern has one.
    pub id: Option<String>,
    /// The `{scope}` segment, if the pattern has one.
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Id,
    Scope,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    methods: Vec<String>,
    segments: Vec<Segment>,
    kind: WriteKind,
}

/// The write routes of an access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    route: Vec<FileRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    method: Vec<String>,
    path: String,
    action: String,
}

/// The built-in rules: `POST /api/work-items` creates,
/// `PUT|PATCH /api/work-items/{id}` edits, `DELETE /api/work-items/{id}`
/// deletes; the same for `/api/events` and `/api/items`.
const DEFAULTS: &str = r#"
[[route]]
method = ["POST"]
path = "/api/work-items"
action = "create"
[[route]]
method = ["PUT", "PATCH"]
path = "/api/work-items/{id}"
action = "edit"
[[route]]
method = ["DELETE"]
path = "/api/work-items/{id}"
action = "delete"
[[route]]
method = ["POST"]
path = "/api/events"
action = "create"
[[route]]
method = ["PUT", "PATCH"]
path = "/api/events/{id}"
action = "edit"
[[route]]
method = ["DELETE"]
path = "/api/events/{id}"
action = "delete"
[[route]]
method = ["POST"]
path = "/api/items"
action = "create"
[[route]]
method = ["PUT", "PATCH"]
path = "/api/items/{id}"
action = "edit"
[[route]]
method = ["DELETE"]
path = "/api/items/{id}"
action = "delete"
"#;

impl Routes {
    /// The built-in rules for common REST shapes (see the module docs).
    pub fn defaults() -> Routes {
        // The built-in text is a constant the tests parse: it cannot fail.
        Routes::parse(DEFAULTS, Path::new("<built-in routes>")).unwrap_or(Routes { rules: Vec::new() })
    }

    /// Reads a routes file.
    pub fn load(path: &Path) -> Result<Routes> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Routes::parse(&text, path)
    }

    /// Parses routes TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Routes> {
        let bad = |message: String| Error::Invalid(format!("{}: {message}", origin.display()));
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut rules = Vec::with_capacity(file.route.len());
        for (i, r) in file.route.into_iter().enumerate() {
            let kind = match r.action.as_str() {
                "create" => WriteKind::Create,
                "edit" => WriteKind::Edit,
                "delete" => WriteKind::Delete,
                other => {
                    return Err(bad(format!(
                        "route {}: action {other:?}; expected create, edit or delete",
                        i + 1
                    )))
                }
            };
            if !r.path.starts_with('/') {
                return Err(bad(format!("route {}: path {:?} must start with /", i + 1, r.path)));
            }
            if r.method.is_empty() {
                return Err(bad(format!("route {}: no method", i + 1)));
            }
            let segments = r
                .path
                .trim_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| match s {
                    "{id}" => Segment::Id,
                    "{scope}" => Segment::Scope,
                    s if s.starts_with('{') && s.ends_with('}') => Segment::Any,
                    s => Segment::Literal(s.to_owned()),
                })
                .collect();
            rules.push(Rule {
                methods: r.method.iter().map(|m| m.to_ascii_uppercase()).collect(),
                segments,
                kind,
            });
        }
        Ok(Routes { rules })
    }

    /// The write `method path` performs, if a rule matches (`path` without
    /// its query string).
    pub fn match_request(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        'rules: for rule in &self.rules {
            if !rule.methods.iter().any(|m| m == method) || rule.segments.len() != parts.len() {
                continue;
            }
            let (mut id, mut scope) = (None, None);
            for (seg, part) in rule.segments.iter().zip(&parts) {
                match seg {
                    Segment::Literal(l) if l != part => continue 'rules,
                    Segment::Id => id = Some((*part).to_owned()),
                    Segment::Scope => scope = Some((*part).to_owned()),
                    _ => {}
                }
            }
            return Some(RouteMatch {
                kind: rule.kind,
                id,
                scope,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_common_rest_shapes() {
        let r = Routes::defaults();
        assert_eq!(r.rules.len(), 9);
        let m = r.match_request("POST", "/api/work-items").unwrap();
        assert_eq!((m.kind, m.id), (WriteKind::Create, None));
        let m = r.match_request("PATCH", "/api/work-items/42").unwrap();
        assert_eq!((m.kind, m.id.as_deref()), (WriteKind::Edit, Some("42")));
        let m = r.match_request("DELETE", "/api/events/7/").unwrap();
        assert_eq!((m.kind, m.id.as_deref()), (WriteKind::Delete, Some("7")));
        assert!(r.match_request("GET", "/api/work-items/42").is_none());
        assert!(r.match_request("POST", "/api/work-items/42/comments").is_none());
    }

    #[test]
    fn a_file_can_capture_the_scope_and_bad_files_are_named() {
        let r = Routes::parse(
            "[[route]]\nmethod=[\"put\"]\npath=\"/c/{scope}/i/{id}\"\naction=\"edit\"\n",
            Path::new("r.toml"),
        )
        .unwrap();
        let m = r.match_request("PUT", "/c/team-1/i/9").unwrap();
        assert_eq!(m.scope.as_deref(), Some("team-1"));
        let e = Routes::parse(
            "[[route]]\nmethod=[\"PUT\"]\npath=\"/x\"\naction=\"move\"\n",
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("r.toml") && e.contains("move"), "{e}");
    }
}
