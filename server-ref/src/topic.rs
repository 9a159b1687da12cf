//! Topic names: which are valid, how patterns match them, and the names
//! endpoints build from one path segment.

use crate::{Error, Result};

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

/// `{prefix}.{segment}` when that is a valid topic and `segment` has no `.`, the
/// way the endpoints that take a name from the path build their topics.
pub(crate) fn child(prefix: &str, segment: &str, max_len: usize) -> Option<String> {
    let topic = format!("{prefix}.{segment}");
    (!segment.contains('.') && validate_topic(&topic, max_len).is_ok()).then_some(topic)
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
    fn children_are_one_segment() {
        assert_eq!(child("power", "4", 256).as_deref(), Some("power.4"));
        assert_eq!(child("power", "a.b", 256), None);
        assert_eq!(child("power", "a b", 256), None);
    }
}
