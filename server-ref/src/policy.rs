//! The authorisation policy: who may subscribe to and publish on a topic,
//! which endpoints take connections without a token, and the actions
//! dialect's room scoping with the room-to-branch map it learns from
//! publications.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::auth::{Claims, Verifier};
use crate::config::Config;
use crate::metrics::Endpoint;
use crate::topic::pattern_matches;
use crate::{Error, Result};

/// Rooms remembered as belonging to a branch, at most.
const MAX_KNOWN_ROOMS: usize = 100_000;

/// Why an upgrade was refused by the policy (answered with 401).
#[derive(Debug)]
pub(crate) struct Unauthorized(pub(crate) String);

/// The authorisation rules of a running server.
pub struct Policy {
    verifier: Option<Verifier>,
    anonymous_publish: bool,
    anonymous_endpoints: Vec<String>,
    /// Rooms learnt to belong to a branch (from publications naming both).
    room_branches: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("auth", &self.verifier.is_some())
            .field("anonymous_publish", &self.anonymous_publish)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// The rules of `config`, with tokens checked against `secret` (none: auth off).
    pub(crate) fn new(config: &Config, secret: Option<&[u8]>) -> Policy {
        Policy {
            verifier: secret.map(Verifier::new),
            anonymous_publish: config.anonymous_publish,
            anonymous_endpoints: config.anonymous_endpoints.clone(),
            room_branches: Mutex::new(HashMap::new()),
        }
    }

    /// Whether tokens are checked (a JWT secret is configured).
    pub(crate) fn checks_tokens(&self) -> bool {
        self.verifier.is_some()
    }

    /// The claims a connection to `endpoint` with `token` gets: `None` for an
    /// anonymous one, or why it is refused.
    pub(crate) fn claims_for(
        &self,
        endpoint: Endpoint,
        token: Option<String>,
    ) -> std::result::Result<Option<Claims>, Unauthorized> {
        match (&self.verifier, token) {
            (Some(v), Some(t)) => v
                .verify(&t)
                .map(Some)
                .map_err(|e| Unauthorized(e.to_string())),
            (Some(_), None) => {
                let anonymous = endpoint != Endpoint::Actions
                    && self.anonymous_endpoints.iter().any(|e| {
                        e == endpoint.name() || (e == "power" && endpoint == Endpoint::Health)
                    });
                if anonymous {
                    Ok(None)
                } else {
                    Err(Unauthorized(
                        "unauthorized: a token is required (?token= or Authorization: Bearer)"
                            .into(),
                    ))
                }
            }
            (None, _) if endpoint == Endpoint::Actions => {
                tracing::warn!("actions endpoint refused: it always needs a token, and no --jwt-secret is configured");
                Err(Unauthorized(
                    "unauthorized: this endpoint needs a JWT and the server has no --jwt-secret configured".into(),
                ))
            }
            (None, _) => Ok(None),
        }
    }

    fn known_branch(&self, room: &str) -> Option<String> {
        self.room_branches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
    }

    /// Whether `claims` may subscribe to `topic` (`None`: anonymous).
    pub(crate) fn may_subscribe(&self, claims: Option<&Claims>, topic: &str) -> Result<()> {
        match claims {
            Some(c) => {
                if let Some(room) = topic.strip_prefix("room:") {
                    room_allowed(Some(c), room, self.known_branch(room).as_deref())?;
                }
                match &c.topics {
                    Some(patterns) if !patterns.iter().any(|p| pattern_matches(p, topic)) => Err(
                        Error::Forbidden(format!("topic {topic:?} not allowed by token")),
                    ),
                    _ => Ok(()),
                }
            }
            None if self.verifier.is_some() && topic.starts_with("room:") => Err(Error::Forbidden(
                format!("topic {topic:?} is a room and needs a token"),
            )),
            None => Ok(()),
        }
    }

    /// Whether a client with `claims` may publish to `topic`.
    pub(crate) fn may_publish(&self, claims: Option<&Claims>, topic: &str) -> Result<()> {
        match claims {
            Some(c) => {
                if let Some(room) = topic.strip_prefix("room:") {
                    room_allowed(Some(c), room, self.known_branch(room).as_deref())?;
                }
                match &c.publish {
                    Some(patterns) if patterns.iter().any(|p| pattern_matches(p, topic)) => Ok(()),
                    _ => Err(Error::Forbidden(format!(
                        "publishing to topic {topic:?} not allowed by token"
                    ))),
                }
            }
            None if self.anonymous_publish => Ok(()),
            None => Err(Error::Forbidden(format!(
                "publishing to {topic:?} needs a token with a \"publish\" claim (or --anonymous-publish)"
            ))),
        }
    }

    /// Learns from an event published to `rooms` together: with a
    /// `branch:{b}` room among them, the others (but `role:` rooms) belong to
    /// branch `b`.
    pub(crate) fn learn_rooms(&self, rooms: &[String]) {
        let Some(branch) = rooms.iter().find_map(|r| r.strip_prefix("branch:")) else {
            return;
        };
        let mut map = self.room_branches.lock().unwrap_or_else(|e| e.into_inner());
        for r in rooms
            .iter()
            .filter(|r| !r.starts_with("branch:") && !r.starts_with("role:"))
        {
            if map.len() < MAX_KNOWN_ROOMS || map.contains_key(r) {
                map.insert(r.clone(), branch.to_string());
            }
        }
    }
}

/// Room scoping of the actions dialect. `branch:{b}` needs the token's branch,
/// `role:{r}:{b}` its role and branch, `user:{u}` its subject; any other room
/// (`order:{id}`, `machine:{id}`, ...) is allowed unless it is known to belong to
/// another branch (`known_branch`, learnt from publications).
fn room_allowed(claims: Option<&Claims>, room: &str, known_branch: Option<&str>) -> Result<()> {
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
}
