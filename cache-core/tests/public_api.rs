//! The public API is a promise: this test lists every public item of
//! `cache-core` (without the `unstable-internals` feature) from rustdoc's
//! JSON output and compares the list with `cache-core/public-api.txt`, so
//! that every change to the API shows up in review as a change to that
//! file.
//!
//! After a deliberate change, regenerate the file:
//!
//! ```sh
//! UPDATE_PUBLIC_API=1 cargo nextest run -p cache-core --test public_api
//! ```
//!
//! rustdoc's JSON output is unstable on the stable toolchain; the test sets
//! `RUSTC_BOOTSTRAP=1` for that one `cargo rustdoc` call (the same thing
//! `cargo public-api` needs a nightly toolchain for) and builds into its own
//! target directory so it does not disturb the normal build.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs rustdoc with JSON output and returns the parsed document.
fn rustdoc_json() -> Value {
    let dir = manifest_dir();
    let target = dir.join("..").join("target").join("public-api");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .args(["rustdoc", "-q", "-p", "cache-core", "--lib", "--target-dir"])
        .arg(&target)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .output()
        .expect("running cargo rustdoc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo rustdoc failed:\n{stderr}");
    // The same run checks the docs themselves: a broken intra-doc link, or
    // a public page linking to a private item, is a warning here.
    assert!(
        !stderr.contains("warning"),
        "rustdoc warns about cache-core's docs:\n{stderr}"
    );
    let json = std::fs::read(target.join("doc").join("cache_core.json")).expect("rustdoc's JSON file");
    serde_json::from_slice(&json).expect("rustdoc's JSON")
}

/// Walks the crate from its root module and lists its public items. An
/// item reachable at several paths (a re-export) is listed in full once,
/// at its shortest path, and as `use <path> = <that path>` at the others.
struct Lister<'a> {
    index: &'a serde_json::Map<String, Value>,
    lines: BTreeSet<String>,
    /// Every public path of every item: (item id, path).
    reachable: BTreeSet<(String, String)>,
    modules_seen: HashSet<String>,
}

impl<'a> Lister<'a> {
    fn item(&self, id: &Value) -> Option<&'a Value> {
        let key = match id {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return None,
        };
        self.index.get(&key)
    }

    /// Phase 1: every public path of every item.
    fn collect(&mut self, path: &str, module: &Value) {
        for id in module["items"].as_array().into_iter().flatten() {
            let Some(item) = self.item(id) else { continue };
            if item["visibility"] != "public" {
                continue;
            }
            let (kind, inner) = kind_of(item);
            if kind == "use" {
                let target = self.item(&inner["id"]);
                match target {
                    Some(t) if inner["is_glob"] == true => {
                        let (k, m) = kind_of(t);
                        if k == "module" {
                            self.collect(path, m);
                        }
                    }
                    Some(t) => {
                        let name = inner["name"].as_str().unwrap_or_default();
                        self.found(&inner["id"], t, &format!("{path}::{name}"));
                    }
                    // An item of another crate: listed as the re-export it is.
                    None => {
                        let source = inner["source"].as_str().unwrap_or_default();
                        let name = inner["name"].as_str().unwrap_or_default();
                        self.lines.insert(format!("use {path}::{name} = {source}"));
                    }
                }
                continue;
            }
            let name = item["name"].as_str().unwrap_or_default();
            self.found(id, item, &format!("{path}::{name}"));
        }
    }

    fn found(&mut self, id: &Value, item: &Value, path: &str) {
        let id = id.to_string();
        self.reachable.insert((id.clone(), path.to_owned()));
        let (kind, inner) = kind_of(item);
        if kind == "module" && self.modules_seen.insert(path.to_owned()) {
            self.collect(path, inner);
        }
    }

    /// Phase 2: each item in full at its shortest path, aliases as `use`.
    fn list(&mut self) {
        let mut by_item: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (id, path) in &self.reachable {
            by_item.entry(id.clone()).or_default().push(path.clone());
        }
        for (id, mut paths) in by_item {
            paths.sort_by_key(|p| (p.matches("::").count(), p.clone()));
            let Some(item) = self.index.get(id.trim_matches('"')) else {
                continue;
            };
            let canonical = paths[0].clone();
            for alias in &paths[1..] {
                self.lines.insert(format!("use {alias} = {canonical}"));
            }
            self.describe(&canonical, item);
        }
    }

    fn describe(&mut self, here: &str, item: &Value) {
        let (kind, inner) = kind_of(item);
        match kind {
            "module" => {
                self.lines.insert(format!("mod {here}"));
            }
            "struct" => {
                self.lines
                    .insert(format!("struct {here}{}", generics(&inner["generics"])));
                let fields = &inner["kind"];
                for f in fields["plain"]["fields"]
                    .as_array()
                    .or(fields["tuple"].as_array())
                    .into_iter()
                    .flatten()
                {
                    if let Some(field) = self.item(f) {
                        if field["visibility"] == "public" {
                            let ty = ty(&field["inner"]["struct_field"]);
                            let name = field["name"].as_str().unwrap_or("_");
                            self.lines.insert(format!("field {here}::{name}: {ty}"));
                        }
                    }
                }
                self.impls(here, &inner["impls"]);
            }
            "enum" => {
                self.lines
                    .insert(format!("enum {here}{}", generics(&inner["generics"])));
                for v in inner["variants"].as_array().into_iter().flatten() {
                    if let Some(variant) = self.item(v) {
                        let name = variant["name"].as_str().unwrap_or_default();
                        self.lines.insert(format!("variant {here}::{name}"));
                    }
                }
                self.impls(here, &inner["impls"]);
            }
            "trait" => {
                self.lines.insert(format!("trait {here}"));
                for i in inner["items"].as_array().into_iter().flatten() {
                    if let Some(member) = self.item(i) {
                        self.member(here, member);
                    }
                }
            }
            "function" => {
                self.lines.insert(function(here, inner));
            }
            "type_alias" => {
                self.lines.insert(format!("type {here} = {}", ty(&inner["type"])));
            }
            "constant" => {
                self.lines.insert(format!("const {here}: {}", ty(&inner["type"])));
            }
            "static" => {
                self.lines.insert(format!("static {here}: {}", ty(&inner["type"])));
            }
            "macro" => {
                self.lines.insert(format!("macro {here}"));
            }
            other => {
                self.lines.insert(format!("{other} {here}"));
            }
        }
    }

    /// Inherent methods and constants, and the traits implemented (not
    /// the compiler's auto traits, nor blanket impls such as `From<T> for T`).
    fn impls(&mut self, owner: &str, impls: &Value) {
        for id in impls.as_array().into_iter().flatten() {
            let Some(item) = self.item(id) else { continue };
            let inner = &item["inner"]["impl"];
            if inner["is_synthetic"] == true || !inner["blanket_impl"].is_null() {
                continue;
            }
            match inner["trait"]["path"].as_str() {
                Some(t) => {
                    let negative = if inner["is_negative"] == true { "!" } else { "" };
                    self.lines.insert(format!("impl {negative}{t} for {owner}"));
                }
                None => {
                    for i in inner["items"].as_array().into_iter().flatten() {
                        if let Some(member) = self.item(i) {
                            if member["visibility"] == "public" {
                                self.member(owner, member);
                            }
                        }
                    }
                }
            }
        }
    }

    fn member(&mut self, owner: &str, member: &Value) {
        let name = member["name"].as_str().unwrap_or_default();
        let (kind, inner) = kind_of(member);
        let line = match kind {
            "function" => function(&format!("{owner}::{name}"), inner),
            "assoc_const" => format!("const {owner}::{name}: {}", ty(&inner["type"])),
            "assoc_type" => format!("type {owner}::{name}"),
            other => format!("{other} {owner}::{name}"),
        };
        self.lines.insert(line);
    }
}

fn kind_of(item: &Value) -> (&str, &Value) {
    match item["inner"].as_object().and_then(|o| o.iter().next()) {
        Some((k, v)) => (k.as_str(), v),
        None => ("?", &Value::Null),
    }
}

fn generics(g: &Value) -> String {
    let names: Vec<String> = g["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"]["type"]["is_synthetic"] != true)
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("<{}>", names.join(", "))
    }
}

/// `[async ]fn path(args) -> output`.
fn function(path: &str, f: &Value) -> String {
    let sig = &f["sig"];
    let inputs: Vec<String> = sig["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pair| {
            let name = pair[0].as_str().unwrap_or("_");
            if name == "self" {
                match &pair[1] {
                    Value::Object(o) if o.contains_key("borrowed_ref") => {
                        let mutable = if pair[1]["borrowed_ref"]["is_mutable"] == true {
                            "mut "
                        } else {
                            ""
                        };
                        format!("&{mutable}self")
                    }
                    _ => "self".to_owned(),
                }
            } else {
                format!("{name}: {}", ty(&pair[1]))
            }
        })
        .collect();
    let asyncness = if f["header"]["is_async"] == true { "async " } else { "" };
    let out = match &sig["output"] {
        Value::Null => String::new(),
        t => format!(" -> {}", ty(t)),
    };
    format!(
        "{asyncness}fn {path}{}({}){out}",
        generics(&f["generics"]),
        inputs.join(", ")
    )
}

/// A type, rendered enough to show a change (paths without their module).
fn ty(t: &Value) -> String {
    let Some((kind, v)) = t.as_object().and_then(|o| o.iter().next()) else {
        return "_".to_owned();
    };
    match kind.as_str() {
        "primitive" => v.as_str().unwrap_or("?").to_owned(),
        "generic" => v.as_str().unwrap_or("?").to_owned(),
        "resolved_path" => {
            let path = v["path"].as_str().unwrap_or("?");
            let short = path.rsplit("::").next().unwrap_or(path);
            format!("{short}{}", args(&v["args"]))
        }
        "borrowed_ref" => {
            let m = if v["is_mutable"] == true { "mut " } else { "" };
            format!("&{m}{}", ty(&v["type"]))
        }
        "slice" => format!("[{}]", ty(v)),
        "array" => format!("[{}; {}]", ty(&v["type"]), v["len"].as_str().unwrap_or("?")),
        "tuple" => format!(
            "({})",
            v.as_array()
                .into_iter()
                .flatten()
                .map(ty)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "impl_trait" => format!("impl {}", bounds(v)),
        "dyn_trait" => {
            let traits: Vec<String> = v["traits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let p = t["trait"]["path"].as_str().unwrap_or("?");
                    format!("{}{}", p.rsplit("::").next().unwrap_or(p), args(&t["trait"]["args"]))
                })
                .collect();
            format!("dyn {}", traits.join(" + "))
        }
        "qualified_path" => format!("{}::{}", ty(&v["self_type"]), v["name"].as_str().unwrap_or("?")),
        "raw_pointer" => format!("*{}", ty(&v["type"])),
        "function_pointer" => "fn(..)".to_owned(),
        other => other.to_owned(),
    }
}

fn bounds(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["trait_bound"]["trait"].as_object())
        .map(|t| {
            let p = t.get("path").and_then(Value::as_str).unwrap_or("?");
            format!(
                "{}{}",
                p.rsplit("::").next().unwrap_or(p),
                args(t.get("args").unwrap_or(&Value::Null))
            )
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn args(a: &Value) -> String {
    let Some(list) = a["angle_bracketed"]["args"].as_array() else {
        if let Some(inputs) = a["parenthesized"]["inputs"].as_array() {
            let ins: Vec<String> = inputs.iter().map(ty).collect();
            let out = match &a["parenthesized"]["output"] {
                Value::Null => String::new(),
                t => format!(" -> {}", ty(t)),
            };
            return format!("({}){out}", ins.join(", "));
        }
        return String::new();
    };
    let mut parts: Vec<String> = list
        .iter()
        .map(|g| match g.as_object().and_then(|o| o.iter().next()) {
            Some((k, v)) if k == "type" => ty(v),
            Some((k, v)) if k == "lifetime" => v.as_str().unwrap_or("'_").to_owned(),
            Some((k, _)) => k.clone(),
            None => "_".to_owned(),
        })
        .collect();
    for c in a["angle_bracketed"]["constraints"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        parts.push(format!("{name} = {}", ty(&c["binding"]["equality"]["type"])));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("<{}>", parts.join(", "))
    }
}

fn listing(doc: &Value) -> String {
    let index = doc["index"].as_object().expect("an index");
    let root = index
        .get(&doc["root"].to_string())
        .or_else(|| doc["root"].as_str().and_then(|r| index.get(r)))
        .expect("the root module");
    let mut lister = Lister {
        index,
        lines: BTreeSet::new(),
        reachable: BTreeSet::new(),
        modules_seen: HashSet::new(),
    };
    lister.collect("cache_core", &root["inner"]["module"]);
    lister.list();
    let types = lister
        .lines
        .iter()
        .filter(|l| {
            ["struct ", "enum ", "trait ", "type cache_core"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .count();
    let mut out = format!(
        "# cache-core's public API (tests/public_api.rs; regenerate with UPDATE_PUBLIC_API=1)\n# {types} public types, {} items\n",
        lister.lines.len()
    );
    for line in &lister.lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn the_public_api_is_the_snapshot() {
    let doc = rustdoc_json();
    let now = listing(&doc);
    let file: &Path = &manifest_dir().join("public-api.txt");
    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        std::fs::write(file, &now).unwrap();
        return;
    }
    let before = std::fs::read_to_string(file).unwrap_or_default();
    if before != now {
        let old: BTreeSet<&str> = before.lines().collect();
        let new: BTreeSet<&str> = now.lines().collect();
        let mut diff = String::new();
        for l in old.difference(&new) {
            diff.push_str(&format!("- {l}\n"));
        }
        for l in new.difference(&old) {
            diff.push_str(&format!("+ {l}\n"));
        }
        panic!(
            "cache-core's public API changed. If that is deliberate, regenerate the snapshot with\n  \
             UPDATE_PUBLIC_API=1 cargo nextest run -p cache-core --test public_api\nand review the diff:\n{diff}"
        );
    }
}
