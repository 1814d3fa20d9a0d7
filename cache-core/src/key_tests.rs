#[test]
fn key_builder_lays_out_keys_as_from_parts() {
    let mut b = super::KeyBuilder::with_capacity(48);
    b.trusted("calendar_feed").trusted("{cal:7}").user("Work Type*");
    let key = b.build().unwrap();
    assert_eq!(key.as_str(), "calendar_feed:{cal:7}:Work%20Type%2A");
    assert_eq!(
        key,
        super::Key::from_parts(["calendar_feed", "{cal:7}"], ["Work Type*"]).unwrap()
    );
    assert!(
        super::KeyBuilder::new().build().is_err(),
        "empty, like `Key::new(\"\")`"
    );
}

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

/// `encode_part` as it was before the fast path, kept verbatim as the
/// reference the rewrite must match byte for byte.
fn encode_part_reference(part: &str) -> Cow<'_, str> {
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

/// `Key::from_parts`'s joining as it was before [`KeyBuilder`], over
/// the reference encoder: the layout the builder must reproduce.
fn from_parts_reference(trusted: &[&str], user: &[&str]) -> String {
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
        s.push_str(&encode_part_reference(part));
    }
    s
}

/// The key from a [`KeyBuilder`] and from [`Key::from_parts`], both
/// checked against [`from_parts_reference`]; `None` when invalid.
fn assert_builds_like_reference(trusted: &[&str], user: &[&str]) -> Option<Key> {
    let mut b = KeyBuilder::new();
    for t in trusted {
        b.trusted(t);
    }
    for u in user {
        b.user(u);
    }
    let expected = from_parts_reference(trusted, user);
    assert_eq!(b.as_str(), expected);
    let built = b.build().ok();
    let from_parts = Key::from_parts(trusted.iter().copied(), user.iter().copied()).ok();
    assert_eq!(built, from_parts);
    assert_eq!(built.is_some(), Key::new(expected).is_ok());
    built
}

/// Checks every entry point against the reference: the `Cow` result
/// (including whether it borrows) and `encode_part_into` after a prefix.
fn assert_encodes_like_reference(s: &str) {
    let expected = encode_part_reference(s);
    let got = encode_part(s);
    assert_eq!(got, expected, "{s:?}");
    assert_eq!(
        matches!(got, Cow::Borrowed(_)),
        matches!(expected, Cow::Borrowed(_)),
        "{s:?}"
    );
    let mut out = String::from("pre:");
    encode_part_into(&mut out, s);
    assert_eq!(out, format!("pre:{expected}"), "{s:?}");
}

#[test]
fn ascii_table_matches_the_char_rule() {
    for b in 0u8..128 {
        assert_eq!(
            ASCII_NEEDS_ESCAPE[usize::from(b)],
            char_needs_escape(char::from(b)),
            "byte {b:#04x}"
        );
    }
}

#[test]
fn encode_part_matches_reference_on_edge_cases() {
    for s in [
        "",
        "plain",
        "%",
        "a:b*{c}",
        "Work Type*",
        "\\",
        "\t\n\r\x0b\x0c\x00\x1f\x7f",
        "é",
        "日本",
        "\u{a0}",
        "\u{85}",
        "\u{2028}\u{3000}\u{feff}\u{200b}",
        "é:\u{a0}x*",
        "trailing ",
        " leading",
        "ÿ\u{10FFFF}",
    ] {
        assert_encodes_like_reference(s);
    }
    // Every single character of the first planes, alone and between
    // safe characters (the run-copying boundaries).
    for c in (0u32..0x3100).filter_map(char::from_u32) {
        assert_encodes_like_reference(&c.to_string());
        assert_encodes_like_reference(&format!("a{c}b"));
    }
}

#[test]
fn builder_matches_from_parts() {
    let samples: &[(&[&str], &[&str])] = &[
        (&["calendar_feed", "{cal:7}"], &["Work Type*"]),
        (&["ns"], &[]),
        (
            &["ns", "v", "{cal%3A7}", "g42"],
            &["2025-09-29T00:00:00+08:00", "a b", "", "日本\u{a0}"],
        ),
        // Empty parts: no separator until something has been written.
        (&["", "a"], &["", "b"]),
        (&["a", ""], &[""]),
        (&[], &["x:y", "%"]),
    ];
    for (trusted, user) in samples {
        assert!(assert_builds_like_reference(trusted, user).is_some());
    }
    assert_eq!(
        assert_builds_like_reference(&["", "a"], &["", "b"]).unwrap().as_str(),
        "a::b"
    );
    let mut b = KeyBuilder::with_capacity(8);
    b.trusted("ns")
        .hash_tag("cal:7 {x}")
        .tagged_u64("g", 0)
        .tagged_u64("v", u64::MAX);
    assert_eq!(b.as_str(), "ns:{cal%3A7%20%7Bx%7D}:g0:v18446744073709551615");
    assert!(KeyBuilder::new().build().is_err());
    let mut huge = KeyBuilder::new();
    huge.user(&"x".repeat(MAX_KEY_BYTES + 1));
    assert!(huge.build().is_err());
}

#[test]
fn u64_digits_match_to_string() {
    for n in [
        0,
        1,
        9,
        10,
        99,
        100,
        12_345,
        u64::from(u32::MAX),
        i64::MAX as u64,
        u64::MAX - 1,
        u64::MAX,
    ] {
        let mut s = String::new();
        push_u64(&mut s, n);
        assert_eq!(s, n.to_string());
    }
}

/// Strings heavy in the characters that matter: every escaped ASCII
/// character, Unicode whitespace/controls, and ordinary non-ASCII.
fn tricky_string() -> impl Strategy<Value = String> {
    let atoms = proptest::sample::select(vec![
        "%", ":", "{", "}", "*", "?", "[", "]", "\\", " ", "\t", "\n", "\r", "\x00", "\x7f", "\u{a0}", "\u{85}",
        "\u{2028}", "\u{3000}", "é", "日", "a", "Z", "0", "-", "+", ".", "/", "~",
    ]);
    proptest::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn encode_part_matches_reference_on_any_string(s in any::<String>()) {
        assert_encodes_like_reference(&s);
    }

    #[test]
    fn encode_part_matches_reference_on_tricky_strings(s in tricky_string()) {
        assert_encodes_like_reference(&s);
    }

    #[test]
    fn builder_matches_from_parts_on_any_parts(
        trusted in proptest::collection::vec("[a-z{}:%0-9]{0,6}", 0..4),
        user in proptest::collection::vec(tricky_string(), 0..4),
    ) {
        let trusted: Vec<&str> = trusted.iter().map(String::as_str).collect();
        let user: Vec<&str> = user.iter().map(String::as_str).collect();
        assert_builds_like_reference(&trusted, &user);
    }

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
