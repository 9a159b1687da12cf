//! The crate's one error type.

/// Everything that can go wrong in hublink-server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topic name that is empty, too long or has a character outside the allowed set.
    #[error("{0}")]
    InvalidTopic(String),
    /// A room name the actions dialect does not accept.
    #[error("room {room:?} is not valid: {reason}")]
    InvalidRoom {
        /// The offending room.
        room: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token's claims do not allow the operation.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A token that is missing, malformed, badly signed, expired or not yet valid.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The broker refused a publication: nothing was published.
    #[error("publish failed: {0}")]
    PublishFailed(String),
    /// The broker did not answer a publication (a Redis timeout, a link lost
    /// mid-call): it may or may not have been published. Retrying with the
    /// same idempotency key is safe.
    #[error("publish outcome unknown: {0}")]
    PublishUnknown(String),
    /// The broker's backend (Redis) cannot be reached; nothing was done.
    #[error("broker unavailable: {0}")]
    BrokerUnavailable(String),
    /// A configuration value that cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// `Result` with the crate's [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
