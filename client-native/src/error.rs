//! The crate's error type.

/// What went wrong with a call on the client.
///
/// Losing the connection is not an error: it is a state change the client
/// recovers from by itself (see [`Client::state_changes`](crate::Client::state_changes)).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot be connected to.
    #[error("invalid URL {url:?}: {problem}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The core refused the call (queue full, unsupported by the dialect, bad topic).
    #[error(transparent)]
    Core(#[from] hublink_core::Error),
    /// A publish that will not be delivered: refused (nothing was
    /// published), or expired or closed unanswered, which
    /// [`maybe_published`](hublink_core::PublishError::maybe_published) tells
    /// apart from nothing having been published.
    #[error(transparent)]
    Publish(#[from] hublink_core::PublishError),
    /// A payload could not be turned into JSON.
    #[error("payload does not serialise to JSON: {0}")]
    Serialize(String),
    /// The client was closed, or stopped for good; build a new one.
    #[error("the client is closed")]
    Closed,
    /// The client stopped without reaching the wanted state.
    #[error("the client stopped: {reason}")]
    Stopped {
        /// Why, as the core reported it (`forbidden`, `gave_up`, `closed_by_user`...).
        reason: String,
    },
    /// Waiting took longer than allowed.
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        ms: u64,
    },
    /// The [outbox](crate::ClientBuilder::outbox) file cannot be used: it
    /// cannot be read, written or locked (another client holds it), or the
    /// dialect does not acknowledge publishes.
    #[error("outbox {}: {problem}", path.display())]
    Outbox {
        /// The file as given.
        path: std::path::PathBuf,
        /// What is wrong, with the OS's error where there is one.
        problem: String,
    },
    /// `connect()` was called outside a tokio runtime.
    #[error("Client::connect must be called within a tokio runtime")]
    NoRuntime,
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error a token provider may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
