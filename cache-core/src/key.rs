//! Cache keys: validation, building from parts, glob escaping and the
//! deterministic mapping to the restricted key alphabet of Memcached.
//!
//! Three separate concerns live here because they are easy to confuse:
//!
//! 1. **Building** a key from parts ([`Key::from_parts`]): parts that come from
//!    user input (a filter value, a time-zone name) are percent-encoded so that a
//!    part can never contain the separator `:`, a Redis Cluster hash-tag brace
//!    `{`/`}`, whitespace, or a glob metacharacter. Two different part lists
//!    therefore never build the same key, and a user cannot widen a prefix
//!    deletion by typing `*`.
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
        let mut s = String::new();
        for part in trusted {
            if !s.is_empty() {
                s.push(SEPARATOR);
            }
            s.push_str(part);
        }
        for part in user {
            if !s.is_empty() {
                s.push(SEPARATOR);
            }
            s.push_str(&encode_part(part));
        }
        Key::new(s)
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

/// Percent-encodes the characters that must never appear inside a key part
/// taken from user input: `%` itself, the separator `:`, hash-tag braces
/// `{ }`, glob metacharacters `* ? [ ] \`, whitespace and control characters.
/// Everything else (including non-ASCII) is kept, so keys stay readable.
///
/// ```
/// assert_eq!(cache_core::key::encode_part("a:b*{c}"), "a%3Ab%2A%7Bc%7D");
/// ```
pub fn encode_part(part: &str) -> Cow<'_, str> {
    fn needs(c: char) -> bool {
        matches!(c, '%' | ':' | '{' | '}' | '*' | '?' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control()
    }
    if !part.chars().any(needs) {
        return Cow::Borrowed(part);
    }
    let mut out = String::with_capacity(part.len() + 8);
    for c in part.chars() {
        if needs(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_empty_and_huge() {
        assert!(matches!(Key::new(""), Err(Error::InvalidKey { .. })));
        assert!(Key::new("x".repeat(MAX_KEY_BYTES)).is_ok());
        let err = Key::new("é".repeat(MAX_KEY_BYTES)).unwrap_err();
        assert!(err.to_string().contains("8192"), "{err}");
    }

    #[test]
    fn mapped_form_of_a_mapped_key_is_remapped() {
        let mapped = safe_key("a b", 250).into_owned();
        // A user who stores a key equal to the mapped form of "a b" must not
        // read "a b"'s value.
        assert_ne!(safe_key(&mapped, 250), mapped);
    }

    #[test]
    fn glob_escape_roundtrip_meaning() {
        assert_eq!(escape_glob("plain:key"), "plain:key");
        assert_eq!(escape_glob("p*"), r"p\*");
    }

    proptest! {
        #[test]
        fn safe_key_is_always_memcached_legal(s in "\\PC{1,400}|[ -~\\t\\n]{1,400}") {
            let m = safe_key(&s, MEMCACHED_MAX_KEY_BYTES);
            prop_assert!(m.len() <= MEMCACHED_MAX_KEY_BYTES);
            prop_assert!(m.bytes().all(|b| b.is_ascii_graphic()));
        }

        #[test]
        fn safe_key_is_injective_on_samples(a in "[ -~]{1,300}", b in "[ -~]{1,300}") {
            prop_assume!(a != b);
            prop_assert_ne!(safe_key(&a, 250), safe_key(&b, 250));
        }

        #[test]
        fn encoded_parts_never_collide(a in proptest::collection::vec("[ -~]{0,8}", 1..4),
                                       b in proptest::collection::vec("[ -~]{0,8}", 1..4)) {
            prop_assume!(a != b);
            let ka = Key::from_parts(["ns"], a.iter().map(String::as_str)).unwrap();
            let kb = Key::from_parts(["ns"], b.iter().map(String::as_str)).unwrap();
            prop_assert_ne!(ka, kb);
        }
    }
}
