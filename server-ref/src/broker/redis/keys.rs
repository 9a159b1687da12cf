//! The names of a topic's keys and channel (`P` is `--redis-prefix`):
//! `P:meta:{topic}`, `P:stream:{topic}`, `P:dedupe:{topic}`,
//! `P:dedupe-at:{topic}`, `P:ch:{topic}`. The braces are Redis
//! Cluster hash tags: a topic's keys share a slot.

pub(super) struct Keys {
    pub(super) prefix: String,
    /// `P:ch:{`, to find the topic in a channel name.
    channel_head: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            channel_head: format!("{prefix}:ch:{{"),
        }
    }

    pub(super) fn meta(&self, topic: &str) -> String {
        format!("{}:meta:{{{topic}}}", self.prefix)
    }

    pub(super) fn stream(&self, topic: &str) -> String {
        format!("{}:stream:{{{topic}}}", self.prefix)
    }

    /// The topic's idempotency keys, each with the `"seq epoch"` it got.
    pub(super) fn dedupe(&self, topic: &str) -> String {
        format!("{}:dedupe:{{{topic}}}", self.prefix)
    }

    /// The same keys by the ms they were published at (for the window).
    pub(super) fn dedupe_at(&self, topic: &str) -> String {
        format!("{}:dedupe-at:{{{topic}}}", self.prefix)
    }

    pub(super) fn channel(&self, topic: &str) -> String {
        format!("{}{topic}}}", self.channel_head)
    }

    pub(super) fn topic_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&self.channel_head)?.strip_suffix('}')
    }

    /// The Redis glob for a hublink pattern: `*` and `**` both become `*`
    /// (broader than one segment; messages are filtered again locally). Glob
    /// characters in the prefix are escaped; topics cannot contain any.
    pub(super) fn channel_glob(&self, pattern: &str) -> String {
        let mut g = String::new();
        for c in self.channel_head.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                g.push('\\');
            }
            g.push(c);
        }
        g.push_str(&pattern.replace("**", "*"));
        g.push('}');
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_globs() {
        let k = Keys::new("hub*");
        assert_eq!(k.channel("machines.A"), "hub*:ch:{machines.A}");
        assert_eq!(k.topic_of("hub*:ch:{machines.A}"), Some("machines.A"));
        assert_eq!(k.topic_of("other:ch:{machines.A}"), None);
        assert_eq!(k.channel_glob("machines.*"), "hub\\*:ch:{machines.*}");
        assert_eq!(k.meta("t"), "hub*:meta:{t}");
        assert_eq!(k.stream("t"), "hub*:stream:{t}");
    }
}
