//! What travels on a backplane: a [`Notice`] (what changed), numbered by
//! its publisher ([`Numbered`]) so that a subscriber can tell when it
//! missed one.

/// What one notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Notice {
    /// The key under this name changed in L2 (reseeded, overwritten,
    /// deleted) to a value the notice does not carry: forget what you know
    /// about it.
    Changed(String),
    /// One `incr` moved the counter under `key` from `from` to `to`
    /// (`to - from` is the increment). A table that knew `from` now knows
    /// `to` without asking L2; one that knew something else forgets it
    /// (see [`KnownGenerations`](super::KnownGenerations), "Bumps").
    Bumped {
        /// The counter's key.
        key: String,
        /// Its value just before the `incr`.
        from: u64,
        /// The value the `incr` returned.
        to: u64,
    },
    /// Everything may have changed (a prefix deletion): forget all.
    All,
}

impl Notice {
    /// The wire form: `k <key>`, `b <from> <to> <key>` or `*`. The key
    /// comes last, so any byte in it is fine. (Published notices are
    /// numbered; the tests send unnumbered ones as an older release did.)
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    fn encode_into(&self, v: &mut Vec<u8>) {
        match self {
            Notice::Changed(k) => {
                v.extend_from_slice(b"k ");
                v.extend_from_slice(k.as_bytes());
            }
            Notice::Bumped { key, from, to } => v.extend_from_slice(format!("b {from} {to} {key}").as_bytes()),
            Notice::All => v.push(b'*'),
        }
    }

    /// Parses [`Self::encode`]'s form; anything else is read as
    /// [`Notice::All`], the safe answer to a message we do not understand.
    /// That is also what a process of a release before bump notices makes
    /// of a `b …` notice (and one before numbered notices of an `n …`
    /// one): mixing releases during a rolling upgrade is safe, and costs
    /// the older processes a round trip per read after each notice.
    pub(crate) fn decode(bytes: &[u8]) -> Notice {
        if let Some(Ok(k)) = bytes.strip_prefix(b"k ").map(std::str::from_utf8) {
            return Notice::Changed(k.to_owned());
        }
        let bumped = bytes
            .strip_prefix(b"b ")
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|rest| {
                let (from, rest) = rest.split_once(' ')?;
                let (to, key) = rest.split_once(' ')?;
                Some(Notice::Bumped {
                    key: key.to_owned(),
                    from: from.parse().ok()?,
                    to: to.parse().ok()?,
                })
            });
        bumped.unwrap_or(Notice::All)
    }

    /// The key the notice names; `None` for [`Notice::All`].
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Notice::Changed(k) | Notice::Bumped { key: k, .. } => Some(k),
            Notice::All => None,
        }
    }
}

/// A notice as a publisher sends it: its own id and the notice's number in
/// its sequence (1, 2, 3, …). A subscriber that sees a publisher skip a
/// number missed a notice and forgets every generation it trusts, so a
/// lost notice is noticed at that publisher's next one instead of never
/// (see [`KnownGenerations`](super::KnownGenerations), "Numbered notices").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct Numbered {
    /// Who sent it: one id per publishing [`TwoTier`](super::TwoTier),
    /// unique among the processes of an application.
    pub(crate) publisher: u64,
    /// Its place in the publisher's sequence, from 1, with no gaps.
    pub(crate) seq: u64,
    /// What it says.
    pub(crate) notice: Notice,
}

impl Numbered {
    /// Notice `seq` of `publisher`.
    pub(crate) fn new(publisher: u64, seq: u64, notice: Notice) -> Self {
        Numbered { publisher, seq, notice }
    }

    /// The wire form: `n <publisher, 16 hex digits> <seq> ` followed by
    /// [`Notice::encode`]'s.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = format!("n {:016x} {} ", self.publisher, self.seq).into_bytes();
        self.notice.encode_into(&mut v);
        v
    }

    /// Parses a message from the wire: `Some((publisher, seq))` and the
    /// notice for [`Self::encode`]'s form; `None` and the notice for an
    /// unnumbered one (a release before numbering); a damaged number reads
    /// as an unnumbered [`Notice::All`].
    pub(crate) fn decode(bytes: &[u8]) -> (Option<(u64, u64)>, Notice) {
        let Some(rest) = bytes.strip_prefix(b"n ") else {
            return (None, Notice::decode(bytes));
        };
        let parsed = (|| {
            let (publisher, rest) = split_word(rest)?;
            let (seq, rest) = split_word(rest)?;
            let publisher = u64::from_str_radix(std::str::from_utf8(publisher).ok()?, 16).ok()?;
            let seq = std::str::from_utf8(seq).ok()?.parse().ok()?;
            Some(((publisher, seq), rest))
        })();
        match parsed {
            Some((origin, rest)) => (Some(origin), Notice::decode(rest)),
            None => (None, Notice::All),
        }
    }
}

/// `bytes` split at its first space: (before, after).
fn split_word(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b' ', bytes)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(key: &str, from: u64, to: u64) -> Notice {
        Notice::Bumped {
            key: key.into(),
            from,
            to,
        }
    }

    #[test]
    fn notices_round_trip() {
        for n in [
            Notice::Changed("ns:s:{a b}:gen".into()),
            bump("ns:s:{a b}:fgen", 1 << 32, (1 << 33) + 1),
            Notice::All,
        ] {
            assert_eq!(Notice::decode(&n.encode()), n);
            let numbered = Numbered::new(u64::MAX - 7, 42, n.clone());
            assert_eq!(
                Numbered::decode(&numbered.encode()),
                (Some((u64::MAX - 7, 42)), n.clone())
            );
            assert_eq!(Numbered::decode(&n.encode()), (None, n), "an older release's notice");
        }
        assert_eq!(Notice::decode(b"garbage"), Notice::All);
        assert_eq!(Notice::decode(b"b 1 x k"), Notice::All, "a bad number is not trusted");
        assert_eq!(Notice::decode(b"b 1 2"), Notice::All);
    }

    #[test]
    fn damaged_numbers_read_as_everything_changed() {
        for bad in [&b"n 12"[..], b"n zz 3 k a", b"n 1 -3 k a", b"n 1  k a", b"n "] {
            assert_eq!(Numbered::decode(bad), (None, Notice::All), "{bad:?}");
        }
        assert_eq!(
            Notice::decode(&Numbered::new(1, 2, Notice::Changed("k".into())).encode()),
            Notice::All,
            "what a release before numbering makes of a numbered notice"
        );
    }
}
