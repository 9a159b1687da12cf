//! JWT verification (HS256): the claims hublink-server reads, and where a
//! request carries its token. What the claims allow is [`crate::policy`]'s.

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

#[cfg(test)]
mod tests {
    use super::*;

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
