//! The crate's errors: [`Error`] for refused calls, [`DecodeError`] for frames
//! that did not decode (reported as events, never returned from unrelated calls).

use alloc::string::String;
/// A call the core refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The outbound queue is full; the frame was not accepted.
    #[error("outbound queue is full ({limit} frames waiting for the connection); the frame was not queued")]
    QueueFull {
        /// The queue's limit.
        limit: usize,
    },
    /// The dialect has no such operation.
    #[error("the {dialect} dialect cannot {operation}")]
    Unsupported {
        /// The dialect's name.
        dialect: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// A topic name the core will not send.
    #[error("invalid topic {topic:?}: {problem}")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The connection was closed by the application.
    #[error("the connection was closed by the application; call connect() first")]
    Closed,
    /// A publish id that the protocol does not take.
    #[error("a publish id is 1 to 128 bytes, not {len}")]
    InvalidPublishId {
        /// Its length in bytes.
        len: usize,
    },
    /// A dialect name that is not built in.
    #[error("unknown dialect {name:?}: expected one of {}", crate::dialect::DialectKind::names(), name = .0)]
    UnknownDialect(String),
}

impl Error {
    /// The error's code, as the CLI's JSON and the TypeScript package's
    /// `HublinkError.code` spell it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::QueueFull { .. } => "queue_full",
            Error::Unsupported { .. } => "unsupported",
            Error::InvalidTopic { .. } => "invalid_topic",
            Error::Closed => "closed",
            Error::InvalidPublishId { .. } => "invalid_publish_id",
            Error::UnknownDialect(_) => "unknown_dialect",
        }
    }
}

/// `Result` with the core's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why a received frame, or a payload, did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is not JSON (nor `\n`-separated JSON lines).
    #[error("frame is not JSON: {error} (frame: {excerpt})")]
    Json {
        /// The parser's message.
        error: String,
        /// The start of the offending text.
        excerpt: String,
    },
    /// The frame is over the configured limit and was not parsed.
    #[error("frame of {len} bytes is over the {limit}-byte limit and was not parsed")]
    TooBig {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A binary frame, where the protocol has only text.
    #[error("binary frame of {len} bytes where text is expected")]
    Binary {
        /// Its length.
        len: usize,
    },
    /// JSON, but not of a shape the dialect knows.
    #[error("{dialect} dialect: {problem} (frame: {excerpt})")]
    Shape {
        /// The dialect.
        dialect: String,
        /// What is wrong.
        problem: String,
        /// The start of the offending value.
        excerpt: String,
    },
    /// A payload that does not deserialise into the application's type.
    #[error("payload on topic {topic:?} does not decode: {error}")]
    Payload {
        /// The topic.
        topic: String,
        /// The deserialiser's message.
        error: String,
    },
}

/// The first 120 characters of `text`, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 120;
    // Char by char, no byte slicing: slicing at the 120th char's index makes
    // the browser module 292 B gzipped bigger (its boundary checks), measured.
    let mut out: String = text.chars().take(MAX).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn excerpts_cut_at_characters_not_bytes() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(200);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 121);
        assert!(cut.ends_with("é…"));
        assert_eq!(excerpt(&"x".repeat(120)), "x".repeat(120));
    }
}
