//! A wildcard scope's key index: the entry keys cached under a scope, one
//! per line, read and extended on every fill.

use bytes::Bytes;

/// `Bytes` of a key list stored as an index: one key per line (keys built by
/// the strategies never contain a newline: `encode_part` escapes whitespace
/// and the namespace is validated).
pub(crate) fn encode_index(keys: &[String]) -> Bytes {
    Bytes::from(keys.join("\n"))
}

/// Parses an index written by [`encode_index`]; undecodable lines are
/// skipped (they cannot name a key we wrote).
pub(crate) fn decode_index(bytes: &[u8]) -> Vec<String> {
    std::str::from_utf8(bytes)
        .map(|s| s.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// An entry key to look for in indexes, with its searcher built once: a
/// wildcard fill looks for its key in the index of every scope of the view,
/// before and after writing them, and building the searcher cost as much
/// as a search.
pub(crate) struct Needle<'a> {
    entry: &'a str,
    finder: memchr::memmem::Finder<'a>,
}

impl<'a> Needle<'a> {
    pub(crate) fn new(entry: &'a str) -> Self {
        Needle {
            entry,
            finder: memchr::memmem::Finder::new(entry.as_bytes()),
        }
    }
}

/// Whether the index `bytes` lists `entry` (as [`decode_index`] reads it,
/// without a `String` per key).
pub(crate) fn index_lists(bytes: &[u8], entry: &Needle<'_>) -> bool {
    match std::str::from_utf8(bytes) {
        // Without `\r` a line is exactly what lies between two `\n`s.
        // (`memchr`, not `contains`: std's byte search is not vectorised,
        // and was 5% of a replay's instructions on wildcard indexes.)
        Ok(text) if !entry.entry.is_empty() && memchr::memchr(b'\r', bytes).is_none() => lists_line(text, entry),
        Ok(text) => text.lines().any(|l| l == entry.entry),
        Err(_) => false,
    }
}

/// Whether `text` has a line (between `\n`s, or an end) equal to `entry`:
/// an occurrence of `entry` with a `\n` or an end on each side. Matches
/// do not overlap, which loses none: `entry` holds no `\n` (see
/// [`encode_index`]), so a match stays within one line.
fn lists_line(text: &str, entry: &Needle<'_>) -> bool {
    let b = text.as_bytes();
    let n = entry.entry.len();
    entry
        .finder
        .find_iter(b)
        .any(|at| (at == 0 || b[at - 1] == b'\n') && b.get(at + n).is_none_or(|&c| c == b'\n'))
}

/// The lines of `bytes` (no `\r` in it) if none is empty: the number of
/// `\n`s plus one; `None` when an end or two `\n`s in a row make an empty
/// line. One pass over the separators.
fn count_lines(bytes: &[u8]) -> Option<usize> {
    let mut seps = 0;
    let mut line_start = 0;
    for at in memchr::memchr_iter(b'\n', bytes) {
        if at == line_start {
            return None;
        }
        seps += 1;
        line_start = at + 1;
    }
    (line_start < bytes.len()).then_some(seps + 1)
}

/// An index with one more key: what [`index_with`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IndexWith {
    /// The index to store: `encode_index` of the listed keys, plus `entry`
    /// unless it was listed.
    pub bytes: Bytes,
    /// Keys listed before `entry` was added.
    pub keys_before: usize,
    /// The index's size counted as one byte per separator per listed key
    /// plus `entry` (the cap the strategy checks), before encoding.
    pub weight: usize,
    /// `entry` was already listed (`bytes` is the index as it was).
    pub listed: bool,
}

/// `current` (an index as stored) with `entry` listed: the same bytes as
/// [`encode_index`] of [`decode_index`]`(current)` with `entry` pushed
/// when missing, but without decoding when `current` is already in
/// [`encode_index`]'s own form (valid UTF-8, no `\r`, no empty line),
/// which is every index this crate wrote. A wildcard fill runs this on
/// every index of the view's scopes, and an index holds up to
/// `index_cap` keys, so the saving is a `String` per listed key per fill.
pub(crate) fn index_with(current: Option<&Bytes>, needle: &Needle<'_>) -> IndexWith {
    let entry = needle.entry;
    let bytes = current.map(|b| b.as_ref()).unwrap_or_default();
    if let Some(text) = std::str::from_utf8(bytes)
        .ok()
        .filter(|_| memchr::memchr(b'\r', bytes).is_none())
    {
        if bytes.is_empty() {
            return IndexWith {
                bytes: Bytes::copy_from_slice(entry.as_bytes()),
                keys_before: 0,
                weight: entry.len(),
                listed: false,
            };
        }
        // Whole-index searches rather than a `String` per line: an index
        // holds up to `index_cap` short lines.
        if let Some(keys_before) = count_lines(bytes) {
            let listed = lists_line(text, needle);
            // Σ(len + 1) over the keys is the whole index plus the one
            // separator the last key lacks.
            let weight = bytes.len() + 1 + entry.len();
            let bytes = match current {
                Some(b) if listed => b.clone(),
                _ => {
                    let mut v = Vec::with_capacity(bytes.len() + 1 + entry.len());
                    v.extend_from_slice(bytes);
                    v.push(b'\n');
                    v.extend_from_slice(entry.as_bytes());
                    Bytes::from(v)
                }
            };
            return IndexWith {
                bytes,
                keys_before,
                weight,
                listed,
            };
        }
    }
    // Not in our own form (written by something else, or damaged).
    decode_push_encode(bytes, entry)
}

/// What the strategy always did with an index: decode it, push `entry`
/// unless listed, encode it again. [`index_with`]'s answer on indexes it
/// cannot read in place, and the reference its fast path is tested against.
fn decode_push_encode(bytes: &[u8], entry: &str) -> IndexWith {
    let mut keys = decode_index(bytes);
    let (keys_before, listed) = (keys.len(), keys.iter().any(|k| k == entry));
    let weight = keys.iter().map(|k| k.len() + 1).sum::<usize>() + entry.len();
    if !listed {
        keys.push(entry.to_owned());
    }
    IndexWith {
        bytes: encode_index(&keys),
        keys_before,
        weight,
        listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_roundtrip() {
        let keys = vec!["a:b".to_owned(), "c".to_owned()];
        assert_eq!(decode_index(&encode_index(&keys)), keys);
        assert!(decode_index(b"").is_empty());
    }

    /// The fast path gives exactly what decoding, pushing and encoding
    /// gives, on our own indexes and on foreign or damaged ones.
    #[test]
    fn index_with_is_decode_push_encode() {
        let slow = |current: Option<&[u8]>, entry: &str| decode_push_encode(current.unwrap_or_default(), entry);
        let cases: [&[u8]; 16] = [
            b"x\na\ny",
            b"xa\nay\na",
            b"a\nb\na",
            b"",
            b"a",
            b"a\nb",
            b"b\na\nc",
            b"a\n\nb",
            b"\na",
            b"a\n",
            b"a\r\nb",
            b"\xff\nb",
            b"ab\nabc",
            b"\n",
            b"\n\n",
            b"a\nb\n",
        ];
        for c in cases {
            for entry in ["a", "b", "abc", "zz"] {
                let current = Bytes::copy_from_slice(c);
                let needle = Needle::new(entry);
                assert_eq!(
                    index_with(Some(&current), &needle),
                    slow(Some(c), entry),
                    "{c:?} + {entry}"
                );
                assert_eq!(
                    index_lists(c, &needle),
                    slow(Some(c), entry).listed,
                    "{c:?} lists {entry}"
                );
            }
        }
        assert_eq!(index_with(None, &Needle::new("k")), slow(None, "k"));
    }
}
