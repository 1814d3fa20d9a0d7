//! Cache keys: validation, building from parts, glob escaping and the
//! deterministic mapping to the restricted key alphabet of Memcached.
//!
//! Three separate concerns live here because they are easy to confuse:
//!
//! 1. **Building** a key from parts ([`Key::from_parts`], or a builder of one buffer
//!    on hot paths): parts that come from user input (a filter value, a
//!    time-zone name) are percent-encoded so that a part can never contain the
//!    separator `:`, a Redis Cluster hash-tag brace `{`/`}`, whitespace, or a
//!    glob metacharacter. Two different part lists therefore never build the
//!    same key, and a user cannot widen a prefix deletion by typing `*`.
//! 2. **Glob escaping** ([`escape_glob`]): when a backend turns a prefix into a
//!    pattern (Redis `SCAN MATCH`), any metacharacter left in the prefix is
//!    backslash-escaped, so the pattern matches exactly the prefix.
//! 3. **Safe mapping** ([`safe_key`]): Memcached allows at most 250 bytes and no
//!    whitespace or control characters. Keys that break those rules (or that
//!    happen to look like a mapped key) are replaced by a readable prefix plus
//!    a SHA-256 digest of the whole key. The mapping is deterministic, so every
//!    process computes the same storage key.

use std::borrow::Cow;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The longest key [`Key::new`] accepts, in bytes. Redis would take far more,
/// but a multi-kilobyte key is always a bug in the caller.
pub const MAX_KEY_BYTES: usize = 8 * 1024;

/// The longest key Memcached accepts, in bytes.
pub const MEMCACHED_MAX_KEY_BYTES: usize = 250;

/// Separator placed between parts by [`Key::from_parts`].
pub const SEPARATOR: char = ':';

/// A validated cache key: non-empty UTF-8 of at most [`MAX_KEY_BYTES`] bytes.
///
/// Any other character is allowed; backends with a narrower alphabet map the
/// key with [`safe_key`] themselves, so callers never need to care.
///
/// ```
/// use cache_core::Key;
/// let k = Key::from_parts(["calendar_feed", "{cal:7}"], ["Work Type*"]).unwrap();
/// assert_eq!(k.as_str(), "calendar_feed:{cal:7}:Work%20Type%2A");
/// assert!(Key::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Validates `key` as-is (no encoding).
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if key.is_empty() {
            return Err(Error::InvalidKey {
                key,
                reason: "a key must not be empty",
            });
        }
        if key.len() > MAX_KEY_BYTES {
            let mut shown = key;
            truncate_on_char_boundary(&mut shown, 64);
            shown.push('…');
            return Err(Error::InvalidKey {
                key: shown,
                reason: "a key must be at most 8192 bytes",
            });
        }
        Ok(Key(key))
    }

    /// Builds `trusted:…:trusted:encoded(user):…`, joining with [`SEPARATOR`].
    ///
    /// `trusted` parts are the program's own constants (a namespace, a hash
    /// tag such as `{cal:7}`) and are used verbatim; `user` parts are passed
    /// through [`encode_part`].
    pub fn from_parts<'a, 'b>(
        trusted: impl IntoIterator<Item = &'a str>,
        user: impl IntoIterator<Item = &'b str>,
    ) -> Result<Self> {
        let mut b = KeyBuilder::with_capacity(64);
        for part in trusted {
            b.trusted(part);
        }
        for part in user {
            b.user(part);
        }
        b.build()
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: keys are never empty. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Consumes the key, returning its string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// True when this key starts with `prefix` (byte-wise).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Key {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Key::new(value)
    }
}

impl TryFrom<&str> for Key {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self> {
        Key::new(value)
    }
}

/// Builds a key part by part in one `String`, with the same layout and
/// encoding as [`Key::from_parts`]: parts are joined with [`SEPARATOR`]
/// (none before the first non-empty content), [`trusted`](Self::trusted)
/// parts are copied verbatim and [`user`](Self::user) parts go through
/// [`encode_part`].
///
/// It exists for hot paths: the strategies derive a key on every request,
/// and collecting parts into vectors of owned strings first cost a visible
/// share of each simulated request in allocations and copies.
///
/// (Its equivalence with `Key::from_parts` is tested below.)
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyBuilder {
    buf: String,
}

impl KeyBuilder {
    /// An empty builder.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        KeyBuilder::default()
    }

    /// An empty builder whose buffer holds `capacity` bytes before growing.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        KeyBuilder {
            buf: String::with_capacity(capacity),
        }
    }

    /// Appends a part verbatim (a namespace, a tag, a hash tag such as
    /// `{cal:7}`): the program's own constants, never user input.
    pub(crate) fn trusted(&mut self, part: &str) -> &mut Self {
        self.begin_part().push_str(part);
        self
    }

    /// Appends a part taken from user input, percent-encoded like
    /// [`encode_part`].
    pub(crate) fn user(&mut self, part: &str) -> &mut Self {
        encode_part_into(self.begin_part(), part);
        self
    }

    /// The key built so far (not yet validated).
    pub(crate) fn as_str(&self) -> &str {
        &self.buf
    }

    /// Validates the key built so far as [`Key::new`] does.
    pub(crate) fn build(self) -> Result<Key> {
        Key::new(self.buf)
    }

    /// Appends `{encoded part}`: a user-controlled name as a Redis Cluster
    /// hash tag. [`encode_part`] escapes braces and `:`, so the tag ends
    /// exactly at the closing brace written here.
    pub(crate) fn hash_tag(&mut self, part: &str) -> &mut Self {
        push_hash_tag(self.begin_part(), part);
        self
    }

    /// Appends `prefix` followed by `n` in decimal (`g123`), a trusted part,
    /// without going through `fmt`.
    pub(crate) fn tagged_u64(&mut self, prefix: &str, n: u64) -> &mut Self {
        let out = self.begin_part();
        out.push_str(prefix);
        push_u64(out, n);
        self
    }

    /// Starts a new part (writes the separator unless nothing has been
    /// written yet) and hands out the buffer, for callers that write a part
    /// in pieces. What they write is used verbatim.
    pub(crate) fn begin_part(&mut self) -> &mut String {
        if !self.buf.is_empty() {
            self.buf.push(SEPARATOR);
        }
        &mut self.buf
    }
}

/// Writes `{encoded part}` to `out` (see [`KeyBuilder::hash_tag`]).
pub(crate) fn push_hash_tag(out: &mut String, part: &str) {
    out.push('{');
    encode_part_into(out, part);
    out.push('}');
}

/// Writes `n` in decimal into the end of `buf` and returns the digits.
/// `u64::MAX` has 20 digits, so `buf` always fits.
pub(crate) fn u64_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10 < 10`, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends `n` in decimal, as `n.to_string()` would.
pub(crate) fn push_u64(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    for &d in u64_digits(n, &mut buf) {
        out.push(char::from(d));
    }
}

/// Whether each ASCII byte must be escaped in a user part: the listed
/// metacharacters, and exactly the ASCII characters for which
/// `char::is_whitespace() || char::is_control()` holds (0x00–0x1F, space,
/// 0x7F). A table because [`encode_part`] runs for every user part of every
/// key; a test checks it against the `char` predicate.
const ASCII_NEEDS_ESCAPE: [bool; 128] = {
    let mut table = [false; 128];
    let mut b: u8 = 0;
    while b < 128 {
        table[b as usize] =
            b < 0x20 || b == 0x7F || matches!(b, b' ' | b'%' | b':' | b'{' | b'}' | b'*' | b'?' | b'[' | b']' | b'\\');
        b += 1;
    }
    table
};

/// The rule for any character: what [`ASCII_NEEDS_ESCAPE`] tabulates for
/// ASCII, plus Unicode whitespace and control characters (`U+00A0`,
/// `U+0085`, …).
fn char_needs_escape(c: char) -> bool {
    matches!(c, '%' | ':' | '{' | '}' | '*' | '?' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control()
}

/// `%XX` (uppercase hex) of every byte, three characters each: an escape
/// is then one copy (scope names in keys escape their `:` on every key
/// built).
const ESCAPES: &str = {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const TABLE: [u8; 768] = {
        let mut table = [0u8; 768];
        let mut b = 0;
        while b < 256 {
            table[3 * b] = b'%';
            table[3 * b + 1] = HEX[b >> 4];
            table[3 * b + 2] = HEX[b & 0x0F];
            b += 1;
        }
        table
    };
    // ASCII by construction.
    match std::str::from_utf8(&TABLE) {
        Ok(s) => s,
        Err(_) => "",
    }
};

/// Appends `%XX` (uppercase hex) for one byte, without `format!`.
fn push_escaped_byte(out: &mut String, b: u8) {
    let i = 3 * usize::from(b);
    out.push_str(ESCAPES.get(i..i + 3).unwrap_or_default());
}

/// Percent-encodes the characters that must never appear inside a key part
/// taken from user input: `%` itself, the separator `:`, hash-tag braces
/// `{ }`, glob metacharacters `* ? [ ] \`, whitespace and control characters.
/// Everything else (including non-ASCII) is kept, so keys stay readable.
/// An escaped character is written as `%XX` per UTF-8 byte.
///
/// ```
/// assert_eq!(cache_core::key::encode_part("a:b*{c}"), "a%3Ab%2A%7Bc%7D");
/// assert_eq!(cache_core::key::encode_part("é\u{a0}"), "é%C2%A0");
/// ```
pub fn encode_part(part: &str) -> Cow<'_, str> {
    let clean = if part.is_ascii() {
        !part.bytes().any(|b| ASCII_NEEDS_ESCAPE[usize::from(b & 0x7F)])
    } else {
        !part.chars().any(char_needs_escape)
    };
    if clean {
        return Cow::Borrowed(part);
    }
    let mut out = String::with_capacity(part.len() + 8);
    encode_part_into(&mut out, part);
    Cow::Owned(out)
}

/// Appends [`encode_part`]`(part)` to `out` without an intermediate string.
///
/// Runs of characters that need no escape are copied with one `push_str`
/// each. Pure-ASCII input (nearly every part: dates, filter values, ids)
/// takes a byte loop with a lookup table; anything else walks the `char`s,
/// because Unicode whitespace and control characters must be escaped too.
pub(crate) fn encode_part_into(out: &mut String, part: &str) {
    let mut run_start = 0;
    if part.is_ascii() {
        for (i, b) in part.bytes().enumerate() {
            // `b < 128` here; the mask only spares the bounds check.
            if ASCII_NEEDS_ESCAPE[usize::from(b & 0x7F)] {
                out.push_str(part.get(run_start..i).unwrap_or_default());
                push_escaped_byte(out, b);
                run_start = i + 1;
            }
        }
    } else {
        for (i, c) in part.char_indices() {
            if char_needs_escape(c) {
                out.push_str(part.get(run_start..i).unwrap_or_default());
                let mut utf8 = [0u8; 4];
                for &b in c.encode_utf8(&mut utf8).as_bytes() {
                    push_escaped_byte(out, b);
                }
                run_start = i + c.len_utf8();
            }
        }
    }
    out.push_str(part.get(run_start..).unwrap_or_default());
}

/// Backslash-escapes glob metacharacters (`* ? [ ] \`) so that the result,
/// used as a Redis `MATCH` pattern, matches `literal` exactly.
///
/// ```
/// assert_eq!(cache_core::key::escape_glob(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
/// ```
pub fn escape_glob(literal: &str) -> Cow<'_, str> {
    if !literal.contains(['*', '?', '[', ']', '\\']) {
        return Cow::Borrowed(literal);
    }
    let mut out = String::with_capacity(literal.len() + 4);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Marker between the readable head of a mapped key and its digest.
const DIGEST_MARK: &str = "#sha256:";
/// Hex digits of the digest kept (128 bits: collisions are not a concern).
const DIGEST_HEX: usize = 32;

/// Maps `key` to a form that fits `max_len` bytes of printable, non-space
/// ASCII (Memcached's rules), deterministically.
///
/// Keys that already fit are returned unchanged, except keys that *look like*
/// a mapped key (they end with the digest marker), which are mapped too, so
/// that a user key can never collide with the mapped form of another key.
/// A mapped key is `head#sha256:<32 hex digits>` where `head` is the key's
/// longest safe prefix (unsafe characters become `_`), cut to fit: mapped keys
/// stay recognisable in `stats cachedump` and keep their namespace prefix.
///
/// ```
/// use cache_core::key::safe_key;
/// assert_eq!(safe_key("feed:1:2025-10", 250), "feed:1:2025-10");
/// let long = "x".repeat(300);
/// let mapped = safe_key(&long, 250);
/// assert!(mapped.len() <= 250);
/// assert_eq!(mapped, safe_key(&long, 250)); // deterministic
/// assert_ne!(safe_key("a b", 250), "a b");
/// ```
pub fn safe_key(key: &str, max_len: usize) -> Cow<'_, str> {
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    if printable && key.len() <= max_len && !looks_mapped(key) {
        return Cow::Borrowed(key);
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(DIGEST_HEX);
    for b in digest.iter().take(DIGEST_HEX / 2) {
        hex.push_str(&format!("{b:02x}"));
    }
    let tail_len = DIGEST_MARK.len() + DIGEST_HEX;
    let head_budget = max_len.saturating_sub(tail_len);
    let head: String = key
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(head_budget)
        .collect();
    Cow::Owned(format!("{head}{DIGEST_MARK}{hex}"))
}

fn looks_mapped(key: &str) -> bool {
    key.len() >= DIGEST_MARK.len() + DIGEST_HEX && key[..key.len() - DIGEST_HEX].ends_with(DIGEST_MARK)
}

fn truncate_on_char_boundary(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
