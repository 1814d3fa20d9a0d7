//! The per-hash-tag key index behind `delete_prefix`, and Redis Cluster's
//! hash-tag rule it groups by.

/// The first hash tag of `s` in Redis Cluster's sense: the text between the
/// first `{` and the first `}` after it, when non-empty. `None` when `s`
/// has none (or an empty one).
pub(crate) fn hash_tag(s: &str) -> Option<&str> {
    let open = s.find('{')?;
    let rest = &s[open + 1..];
    let close = rest.find('}')?;
    Some(&rest[..close]).filter(|t| !t.is_empty())
}

/// The hash tag every key starting with `prefix` has, when the prefix
/// decides it: `Some(tag)` (`Some(None)`: "no tag") when the prefix holds
/// its first `{` and the `}` closing it; `None` when keys starting with
/// `prefix` may have different tags.
pub(crate) fn prefix_tag(prefix: &str) -> Option<Option<&str>> {
    let open = prefix.find('{')?;
    prefix[open + 1..].find('}')?;
    Some(hash_tag(prefix))
}

/// Keys grouped by hash tag, so that `delete_prefix` of a prefix that
/// names a tag (`ns:w:{cal:7}:d:`, as the strategies build them) visits
/// that tag's keys instead of the whole store.
///
/// Why lazily, and why it may hold dead keys: keeping it costs every write
/// of a new key a hash-set insert, which a store that never deletes by
/// prefix should not pay, so it is built on the first `delete_prefix` (from
/// a full scan, under every write stripe) and kept from then on. Keys moka
/// evicts are not removed (that would need an eviction listener, which
/// slows every operation); a prefix deletion checks each candidate against
/// the store anyway. When dead keys make the index more than twice the
/// store (plus some slack), a write drops it and the next `delete_prefix`
/// rebuilds it, so its memory stays proportional to the store's.
#[derive(Debug, Default)]
pub(crate) struct PrefixIndex {
    pub(crate) active: bool,
    /// Keys by [`group`]: their first hash tag, `""` for keys without one
    /// (tags are never empty, so the two cannot be confused).
    pub(crate) keys: std::collections::HashMap<String, std::collections::HashSet<String>>,
    pub(crate) len: usize,
}

/// The index group of a key (or of a prefix's keys): its hash tag, or `""`.
pub(crate) fn group(tag: Option<&str>) -> &str {
    tag.unwrap_or("")
}

impl PrefixIndex {
    pub(crate) fn insert(&mut self, key: &str) {
        let g = group(hash_tag(key));
        // Look up by `&str` first: only a new group allocates its name.
        let set = match self.keys.get_mut(g) {
            Some(set) => set,
            None => self.keys.entry(g.to_owned()).or_default(),
        };
        if !set.contains(key) {
            set.insert(key.to_owned());
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        let g = group(hash_tag(key));
        if let Some(set) = self.keys.get_mut(g) {
            if set.remove(key) {
                self.len -= 1;
            }
            if set.is_empty() {
                self.keys.remove(g);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.active = false;
        self.keys = Default::default();
        self.len = 0;
    }

    /// Candidate keys for `prefix` (all keys starting with it that the
    /// index holds; some may be dead).
    pub(crate) fn matching(&self, prefix: &str) -> Vec<String> {
        let groups: Vec<&std::collections::HashSet<String>> = match prefix_tag(prefix) {
            Some(tag) => self.keys.get(group(tag)).into_iter().collect(),
            None => self.keys.values().collect(),
        };
        let mut out: Vec<String> = groups
            .into_iter()
            .flatten()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        // Hash-set order is random per process; removal order is not
        // observable, but a sorted list keeps runs repeatable under a debugger.
        out.sort_unstable();
        out
    }
}

/// Dead keys the prefix index may hold beyond twice the store's entries
/// before it is dropped.
pub(crate) const INDEX_SLACK: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_redis_cluster() {
        assert_eq!(hash_tag("ns:v:{cal%3A7}:gen"), Some("cal%3A7"));
        assert_eq!(hash_tag("a:{x}:{y}"), Some("x"), "the first tag counts");
        assert_eq!(hash_tag("a:{}:{y}"), None, "an empty first tag means none");
        assert_eq!(hash_tag("a:{x"), None);
        assert_eq!(hash_tag("plain"), None);
        assert_eq!(prefix_tag("ns:w:{x}:d:"), Some(Some("x")));
        assert_eq!(prefix_tag("ns:w:{}"), Some(None));
        assert_eq!(prefix_tag("ns:w:{x"), None, "the tag is still open");
        assert_eq!(prefix_tag("ns:w:"), None);
    }
}
