//! JWT verification (HS256), topic patterns and the actions dialect's room scoping.

use axum::http::HeaderMap;
use jsonwebtoken::{decode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The claims hublink-server reads from a token. Unknown claims are ignored.
///
/// The user and the branch may also be named `userId` and `branchId`, as the
/// serverless seed backend names them; a token that names one of them both
/// ways with different values is refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "RawClaims")]
pub struct Claims {
    /// The user (also read from `userId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The user's branch (also read from `branchId`): scopes the actions dialect's rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The user's role (`role:{role}:{branch}` room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Topic patterns the token may subscribe to; absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Topic patterns the token may publish to; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// Expiry, seconds since the epoch (checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not-before, seconds since the epoch (checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// A token's claims as written, before the seed's names are folded in.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    branch: Option<String>,
    #[serde(rename = "branchId")]
    branch_id: Option<String>,
    role: Option<String>,
    topics: Option<Vec<String>>,
    publish: Option<Vec<String>>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// One claim under two names: either, or both when they agree.
fn either(
    what: &str,
    (ours, a): (&str, Option<String>),
    (theirs, b): (&str, Option<String>),
) -> std::result::Result<Option<String>, String> {
    match (a, b) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "the token names its {what} twice with different values: \"{ours}\" is {a:?}, \"{theirs}\" is {b:?}"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

impl TryFrom<RawClaims> for Claims {
    type Error = String;

    fn try_from(r: RawClaims) -> std::result::Result<Claims, String> {
        Ok(Claims {
            sub: either("user", ("sub", r.sub), ("userId", r.user_id))?,
            branch: either("branch", ("branch", r.branch), ("branchId", r.branch_id))?,
            role: r.role,
            topics: r.topics,
            publish: r.publish,
            exp: r.exp,
            nbf: r.nbf,
        })
    }
}

impl Claims {
    /// Whether these claims allow subscribing to `topic` (the `topics` claim, and
    /// room scoping for `room:` topics).
    pub fn may_subscribe(&self, topic: &str) -> Result<()> {
        if let Some(room) = topic.strip_prefix("room:") {
            room_allowed(Some(self), room, None)?;
        }
        match &self.topics {
            Some(patterns) if !patterns.iter().any(|p| pattern_matches(p, topic)) => Err(
                Error::Forbidden(format!("topic {topic:?} not allowed by token")),
            ),
            _ => Ok(()),
        }
    }

    /// Whether these claims allow publishing to `topic`.
    pub fn may_publish(&self, topic: &str) -> Result<()> {
        match &self.publish {
            Some(patterns) if patterns.iter().any(|p| pattern_matches(p, topic)) => Ok(()),
            _ => Err(Error::Forbidden(format!(
                "publishing to topic {topic:?} not allowed by token"
            ))),
        }
    }
}

/// Verifies HS256 tokens with the configured secret.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier { .. }")
    }
}

impl Verifier {
    /// A verifier for `secret`. `exp` and `nbf` are checked when present.
    pub fn new(secret: &[u8]) -> Verifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        Verifier {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Checks a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        decode::<Claims>(token, &self.key, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| Error::Unauthorized(format!("token rejected: {e}")))
    }
}

/// Signs `claims` with HS256 (for the demo token and tests).
pub fn sign(secret: &[u8], claims: &Claims) -> Result<String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| Error::Config(format!("cannot sign token: {e}")))
}

/// The token of a request: `?token=` first, then `Authorization: Bearer`.
pub fn token_from(query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    if let Some(q) = query {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("token=") {
                if !v.is_empty() {
                    return Some(percent_decode(v));
                }
            }
        }
    }
    let h = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let t = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

/// Decodes `%XX` escapes and `+` in a query value.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Matches a topic against a pattern: segments split on `.`, `*` matches one
/// whole segment, a trailing `**` matches the rest (one or more segments); a
/// pattern segment ending in `*` (like `central_*`) matches segments with that prefix.
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    if pattern == "**" {
        return true;
    }
    let mut p = pattern.split('.');
    let mut t = topic.split('.');
    loop {
        match (p.next(), t.next()) {
            (Some("**"), Some(_)) => return true,
            (Some(ps), Some(ts)) => {
                let ok = if ps == "*" {
                    true
                } else if let Some(prefix) = ps.strip_suffix('*') {
                    ts.starts_with(prefix)
                } else {
                    ps == ts
                };
                if !ok {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Validates a topic name: 1 to `max_len` bytes of `[A-Za-z0-9_.:-*/@]`.
pub fn validate_topic(topic: &str, max_len: usize) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::InvalidTopic("topic is empty".into()));
    }
    if topic.len() > max_len {
        return Err(Error::InvalidTopic(format!(
            "topic {:?}... is {} bytes, over the limit of {max_len}",
            topic.chars().take(32).collect::<String>(),
            topic.len()
        )));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:-*/@".contains(*c)))
    {
        return Err(Error::InvalidTopic(format!(
            "topic {topic:?} has the character {c:?}, outside [A-Za-z0-9_.:-*/@]"
        )));
    }
    Ok(())
}

/// Room scoping of the actions dialect. `branch:{b}` needs the token's branch,
/// `role:{r}:{b}` its role and branch, `user:{u}` its subject; any other room
/// (`order:{id}`, `machine:{id}`, ...) is allowed unless it is known to belong to
/// another branch (`known_branch`, learnt from publications).
pub fn room_allowed(claims: Option<&Claims>, room: &str, known_branch: Option<&str>) -> Result<()> {
    let claims = claims.ok_or_else(|| Error::Forbidden(format!("room {room:?} needs a token")))?;
    let branch = claims.branch.as_deref();
    let deny = |why: &str| Err(Error::Forbidden(format!("room {room:?}: {why}")));
    let (kind, rest) = room.split_once(':').ok_or_else(|| Error::InvalidRoom {
        room: room.to_string(),
        reason: "expected kind:id, like branch:abc or order:123",
    })?;
    if rest.is_empty() {
        return Err(Error::InvalidRoom {
            room: room.to_string(),
            reason: "the id after the colon is empty",
        });
    }
    match kind {
        "branch" => {
            if Some(rest) != branch {
                return deny("another branch's room");
            }
        }
        "role" => {
            let (r, b) = rest.split_once(':').unwrap_or((rest, ""));
            if Some(b) != branch {
                return deny("another branch's room");
            }
            if Some(r) != claims.role.as_deref() {
                return deny("another role's room");
            }
        }
        "user" => {
            if Some(rest) != claims.sub.as_deref() {
                return deny("another user's room");
            }
        }
        _ => {
            if let Some(kb) = known_branch {
                if Some(kb) != branch {
                    return deny("belongs to another branch");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("machines.*", "machines.CNC-001"));
        assert!(!pattern_matches("machines.*", "machines.a.b"));
        assert!(pattern_matches("machines.**", "machines.a.b"));
        assert!(!pattern_matches("machines.**", "machines"));
        assert!(pattern_matches("central_*", "central_ABC"));
        assert!(pattern_matches("orders", "orders"));
        assert!(!pattern_matches("orders", "orders2"));
    }

    #[test]
    fn topics_validate() {
        assert!(validate_topic("machines.CNC-001", 256).is_ok());
        assert!(validate_topic("room:branch:b1", 256).is_ok());
        let e = validate_topic("a b", 256).unwrap_err().to_string();
        assert!(e.contains("\"a b\""), "{e}");
        assert!(validate_topic("", 256).is_err());
        assert!(validate_topic(&"x".repeat(257), 256).is_err());
    }

    #[test]
    fn rooms() {
        let c = Claims {
            sub: Some("u1".into()),
            branch: Some("b1".into()),
            role: Some("admin".into()),
            ..Claims::default()
        };
        assert!(room_allowed(Some(&c), "branch:b1", None).is_ok());
        assert!(room_allowed(Some(&c), "branch:b2", None).is_err());
        assert!(room_allowed(Some(&c), "role:admin:b1", None).is_ok());
        assert!(room_allowed(Some(&c), "role:admin:b2", None).is_err());
        assert!(room_allowed(Some(&c), "user:u2", None).is_err());
        assert!(room_allowed(Some(&c), "order:9", None).is_ok());
        assert!(room_allowed(Some(&c), "order:9", Some("b2")).is_err());
        assert!(room_allowed(Some(&c), "nocolon", None).is_err());
    }

    #[test]
    fn seed_claim_names() {
        let v = Verifier::new(b"k");
        let tok = |c: serde_json::Value| {
            jsonwebtoken::encode(&Header::default(), &c, &EncodingKey::from_secret(b"k")).unwrap()
        };
        let c = v
            .verify(&tok(
                serde_json::json!({"userId":"u","branchId":"b","role":"admin","iat":1}),
            ))
            .unwrap();
        assert_eq!(
            (c.sub.as_deref(), c.branch.as_deref(), c.role.as_deref()),
            (Some("u"), Some("b"), Some("admin"))
        );
        let c = v
            .verify(&tok(
                serde_json::json!({"sub":"u","userId":"u","branch":"b"}),
            ))
            .unwrap();
        assert_eq!(
            (c.sub.as_deref(), c.branch.as_deref()),
            (Some("u"), Some("b"))
        );
        let e = v
            .verify(&tok(serde_json::json!({"branch":"b1","branchId":"b2"})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"branch\" is \"b1\", \"branchId\" is \"b2\""),
            "{e}"
        );
        // Signing writes hublink's own names.
        let t = sign(b"k", &c).unwrap();
        assert_eq!(v.verify(&t).unwrap(), c);
    }

    #[test]
    fn decode_query() {
        assert_eq!(percent_decode("a%2Eb+c"), "a.b c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
