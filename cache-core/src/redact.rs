//! Passwords out of backend URLs: the one redactor every crate uses for
//! what it shows of a URL (errors, `Debug`, reports, logs).
//!
//! ```
//! use cache_core::redact::{redact_url, scrub};
//! assert_eq!(redact_url("redis://app:s3cret@h:6379/0"), "redis://app:***@h:6379/0");
//! assert_eq!(redact_url("redis://token@h:6379"), "redis://***@h:6379");
//! assert_eq!(redact_url("memcache://h:11211?password=pw"), "memcache://h:11211?password=***");
//! let said = "AUTH failed for redis://app:s3cret@h:6379/0 (s3cret)";
//! assert_eq!(scrub(said, "redis://app:s3cret@h:6379/0"), "AUTH failed for redis://app:***@h:6379/0 (***)");
//! ```

/// `url` with the password of its user info, and the value of any
/// `password=` or `pass=` query parameter, replaced by `***`.
///
/// The user info is what lies between `://` and the last `@` before the
/// path, query or fragment; a lone `token@` (no `:`) is taken for a
/// password too, since some services put their token there. A URL
/// without `://` is returned as it is. Several URLs in one string (a
/// two-tier spec `two-tier:locmem+redis://…`) are each redacted.
pub fn redact_url(url: &str) -> String {
    // Each `scheme://` starts a URL; redact them one at a time.
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        let next = tail.find("://").map_or(tail.len(), |i| {
            // The next URL starts after the last `+` before its scheme.
            tail[..i].rfind('+').map_or(i, |p| p + 1)
        });
        out.push_str(&redact_one(&tail[..next]));
        rest = &tail[next..];
    }
    out.push_str(rest);
    out
}

/// One URL's part after `scheme://`, redacted.
fn redact_one(after_scheme: &str) -> String {
    let authority_end = after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len());
    let mut out = match after_scheme[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &after_scheme[..at];
            let shown = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                None if !userinfo.is_empty() => "***".to_owned(),
                None => String::new(),
            };
            format!("{shown}{}", &after_scheme[at..])
        }
        None => after_scheme.to_owned(),
    };
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_password_param(k) => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

fn is_password_param(name: &str) -> bool {
    name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("pass")
}

/// `message` (what a client library said) with `url` shown redacted and
/// every password `url` holds replaced by `***` wherever else it appears.
pub fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact_url(url));
    for secret in secrets(url) {
        out = out.replace(&secret, "***");
    }
    out
}

/// The passwords in `url` (and in each URL of a two-tier spec): user-info
/// passwords or lone tokens, and `password=` / `pass=` query values.
fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = url;
    while let Some(scheme_end) = rest.find("://") {
        rest = &rest[scheme_end + 3..];
        let end = rest.find("://").unwrap_or(rest.len());
        let one = &rest[..end];
        let authority_end = one.find(['/', '?', '#']).unwrap_or(one.len());
        if let Some(at) = one[..authority_end].rfind('@') {
            let userinfo = &one[..at];
            found.push(userinfo.split_once(':').map_or(userinfo, |(_, p)| p).to_owned());
        }
        if let Some((_, query)) = one.split_once('?') {
            for kv in query.split('&') {
                if let Some((k, v)) = kv.split_once('=') {
                    if is_password_param(k) {
                        found.push(v.split(['#', '+']).next().unwrap_or(v).to_owned());
                    }
                }
            }
        }
    }
    found.retain(|s| !s.is_empty());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_and_query_passwords_are_hidden_and_nothing_else() {
        for (url, shown) in [
            ("redis://u:pw@h:1/0", "redis://u:***@h:1/0"),
            ("redis://:pw@h:1", "redis://:***@h:1"),
            ("redis://token@h:1", "redis://***@h:1"),
            ("redis://h:1/0", "redis://h:1/0"),
            ("redis://h:1/0?x=a@b", "redis://h:1/0?x=a@b"),
            ("memcache://h:1?password=pw&x=1", "memcache://h:1?password=***&x=1"),
            ("memcache://h:1?PASS=pw", "memcache://h:1?PASS=***"),
            ("redis+cluster://u:p@a:1,b:2", "redis+cluster://u:***@a:1,b:2"),
            ("redis://u:p@ss@h:1", "redis://u:***@h:1"),
            ("locmem", "locmem"),
            ("locmem:64", "locmem:64"),
            (
                "two-tier:locmem+redis://u:pw@h:1/0",
                "two-tier:locmem+redis://u:***@h:1/0",
            ),
            (
                "two-tier/backplane:locmem+redis+cluster://u:pw@a:1,b:2",
                "two-tier/backplane:locmem+redis+cluster://u:***@a:1,b:2",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn scrub_hides_passwords_echoed_anywhere() {
        assert_eq!(scrub("bad pw zz in u:zz@h", "redis://u:zz@h"), "bad pw *** in u:***@h");
        assert_eq!(
            scrub("redis://u:pw9@h:1 said pw9", "two-tier:locmem+redis://u:pw9@h:1"),
            "redis://u:***@h:1 said ***"
        );
        assert_eq!(scrub("fine", "redis://h:1"), "fine");
        assert_eq!(scrub("x=pw1", "memcache://h?password=pw1"), "x=***");
    }
}
