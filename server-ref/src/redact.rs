//! Credentials fit to print: what health output, metrics, logs and errors may
//! show of a URL that carries a password.

/// `url` fit to print: a password in its userinfo (`redis://user:pw@host`:
/// `redis://user:***@host`) and the value of every query parameter whose
/// name contains `pass` (`?password=`, the `?pass=` of a Unix socket URL)
/// become `***` (the latter with whatever follows it). Userinfo without a colon is hidden whole: in `redis://pw@host`
/// it may well be a misplaced password. It works on text that does not parse
/// as a URL too, erring towards hiding more: everything before the last `@`
/// counts as userinfo.
pub fn redacted_url(url: &str) -> String {
    const HIDDEN: &str = "***";
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    let rest = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) if !user.contains(['/', '?', '#']) => {
                    out.push_str(user);
                    out.push(':');
                }
                _ => {}
            }
            out.push_str(HIDDEN);
            &rest[at..]
        }
        None => rest,
    };
    // The value of a password parameter runs to the end: an `&` or `#` in it
    // (unencoded) could otherwise show the rest of the password.
    let mut pos = 0;
    while let Some(found) = rest[pos..].find(['?', '&']) {
        let start = pos + found + 1;
        let key_end = rest[start..]
            .find(['=', '&', '#'])
            .map_or(rest.len(), |i| start + i);
        if rest[key_end..].starts_with('=')
            && rest[start..key_end].to_ascii_lowercase().contains("pass")
        {
            out.push_str(&rest[..=key_end]);
            out.push_str(HIDDEN);
            return out;
        }
        pos = start;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redacted_url;
    use proptest::prelude::*;

    #[test]
    fn redacts_userinfo_passwords_and_password_queries() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://:pw@127.0.0.1:6379/2",
                "redis://:***@127.0.0.1:6379/2",
            ),
            ("redis://alice:pw@host", "redis://alice:***@host"),
            ("redis://pw@host", "redis://***@host"),
            ("redis://:p@ss:w@rd@host:1", "redis://:***@host:1"),
            (
                "rediss://:pw@host/0#insecure",
                "rediss://:***@host/0#insecure",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&pass=pw",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "redis+unix:///run/redis.sock?pass=pw&db=1",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            (
                "redis://host/?Password=pw&protocol=resp3#x",
                "redis://host/?Password=***",
            ),
            ("host:6379", "host:6379"),
            ("pw@host", "***@host"),
            ("redis://:pa/ss@host", "redis://:***@host"),
            ("redis://a/b:pw@host", "redis://***@host"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }

    proptest! {
        /// Whatever the password (any character a URL can hold, `@`, `/`,
        /// `?` and `#` included), it is not in the redacted text.
        #[test]
        fn no_password_survives(pw in "Zq[!-~]{0,24}", user in "[a-z]{0,6}", form in 0..3u8) {
            let url = match form {
                0 => format!("redis://{user}:{pw}@10.0.0.1:6379/0"),
                1 => format!("redis+unix:///run/r.sock?db=0&pass={pw}"),
                _ => format!("redis://10.0.0.1:6379/?password={pw}"),
            };
            let shown = redacted_url(&url);
            prop_assert!(!shown.contains(&pw), "{url} shown as {shown}");
        }
    }
}
