//! What the client understands of a server, whatever dialect it speaks.
//!
//! A [`Dialect`](crate::Dialect) turns each received JSON value into an
//! [`Inbound`]; the state machine only ever looks at `Inbound`.

use alloc::string::String;
use alloc::vec::Vec;
/// The WebSocket subprotocol of the canonical protocol.
pub const SUBPROTOCOL: &str = "hublink.v1";

/// A position in a topic's stream: the epoch of its history and a sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// Identifies the stream's history; `seq`s are comparable only within one epoch.
    pub epoch: String,
    /// The sequence number of a message (0: before the first message).
    pub seq: u64,
}

/// A server-to-client message, classified.
#[derive(Clone, Debug, PartialEq)]
pub enum Inbound<V> {
    /// The server's greeting (`connected`).
    Welcome {
        /// The server's id for this connection.
        client_id: Option<String>,
        /// How often the server sends heartbeats, in ms.
        heartbeat_interval_ms: Option<u64>,
    },
    /// The answer to a subscribe.
    SubscribeAck {
        /// The topic.
        topic: String,
        /// Whether the subscription holds.
        success: bool,
        /// Why not, when it does not.
        error: Option<String>,
        /// Whether missed messages follow (only for a subscribe with `since`).
        recovered: Option<bool>,
        /// The stream's position at the moment of subscribing.
        position: Option<Position>,
    },
    /// The answer to an unsubscribe.
    UnsubscribeAck {
        /// The topic.
        topic: String,
        /// Whether it succeeded.
        success: bool,
        /// Why not.
        error: Option<String>,
    },
    /// The answer to `get_topics`.
    Topics(Vec<String>),
    /// A publication.
    Message(Message<V>),
    /// A server heartbeat.
    Heartbeat {
        /// The server's timestamp, echoed back as is.
        timestamp: Option<V>,
        /// Topics with subscribers on the server node.
        active_streams: Option<u64>,
    },
    /// The server took a publish that carried an `id`.
    PublishAck {
        /// The publish's `id`.
        id: String,
        /// Its topic.
        topic: String,
        /// Where it is in the topic's stream (a repeat's: the first publish's).
        position: Position,
    },
    /// The answer to a ping.
    Pong,
    /// A server error.
    Error(ServerError),
    /// The server asks the client to reconnect later.
    Reconnect {
        /// Why.
        reason: String,
        /// Not before this many ms.
        retry_after_ms: u64,
    },
    /// A message of a type the dialect does not know, handed to the application.
    Unknown(V),
    /// A frame with nothing for the client (e.g. a bare acknowledgement).
    Ignore,
}

/// A publication on a topic.
#[derive(Clone, Debug, PartialEq)]
pub struct Message<V> {
    /// The topic (for stream dialects, the message type).
    pub topic: String,
    /// The message's own type name where the dialect has one (`sensor_data`,
    /// `order:created`), else `None`.
    pub kind: Option<String>,
    /// Position in the stream, for dialects with history.
    pub position: Option<Position>,
    /// The payload.
    pub data: V,
    /// The server's timestamp, as sent.
    pub timestamp: Option<V>,
}

impl<V: crate::JsonValue> Message<V> {
    /// Decodes the payload into the application's type.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::DecodeError> {
        self.data
            .deserialize()
            .map_err(|e| crate::DecodeError::Payload {
                topic: self.topic.clone(),
                error: e,
            })
    }

    /// The sequence number, when the dialect has one.
    pub fn seq(&self) -> Option<u64> {
        self.position.as_ref().map(|p| p.seq)
    }
}

/// The top-level fields of a frame that the shell parsed itself (the browser
/// shell: with `JSON.parse`), read once so that an ordinary message crosses
/// into the core as a few scalars and its payload never does. See
/// [`Connection::handle_header`](crate::Connection::handle_header).
///
/// A field is `None` when the frame lacks it or it has another JSON type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header<'a> {
    /// The `type` field.
    pub kind: Option<&'a str>,
    /// The `topic` field.
    pub topic: Option<&'a str>,
    /// The `seq` field, when it is a non-negative integer.
    pub seq: Option<u64>,
    /// The `epoch` field.
    pub epoch: Option<&'a str>,
    /// Whether the frame has a `data` field (of any type, null included).
    pub has_data: bool,
}

/// A message as a dialect reads it from a [`Header`]: its topic and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderMessage<'a> {
    /// The topic.
    pub topic: &'a str,
    /// `(epoch, seq)`, for dialects with history.
    pub position: Option<(&'a str, u64)>,
}

/// What the core made of a [`Header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// A message to deliver, once: hand the frame's payload (`data`) to the
    /// application, after the events this call queued (a [`Gap`] comes first).
    ///
    /// [`Gap`]: crate::Event::Gap
    Deliver,
    /// Nothing for the application: a message delivered before, or a frame
    /// from a transport that is no longer current.
    Drop,
    /// Not a message the header tells all of (a control frame, a dialect
    /// without a header path, a malformed message): feed the whole value with
    /// [`Connection::handle_value`](crate::Connection::handle_value).
    Decode,
}

/// An `error` message from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// Machine-readable code (`invalid_json`, `forbidden`, ...).
    pub code: String,
    /// What was wrong.
    pub message: String,
    /// Whether the connection carries on.
    pub recoverable: bool,
    /// Errors this connection has caused so far.
    pub error_count: Option<u64>,
    /// The `id` of the publish this error answers.
    pub id: Option<String>,
}

/// Close codes of PROTOCOL.md section 4.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Going away.
    pub const GOING_AWAY: u16 = 1001;
    /// Abnormal closure: no close frame was received.
    pub const ABNORMAL: u16 = 1006;
    /// Policy violation.
    pub const POLICY: u16 = 1008;
    /// A frame over the peer's limit.
    pub const TOO_BIG: u16 = 1009;
    /// Internal error.
    pub const INTERNAL: u16 = 1011;
    /// Service restart.
    pub const RESTART: u16 = 1012;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Unauthorized: the token is missing, invalid or expired.
    pub const UNAUTHORIZED: u16 = 4001;
    /// Forbidden: valid token, not allowed here. Do not reconnect.
    pub const FORBIDDEN: u16 = 4003;
    /// Heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4008;
    /// Slow consumer.
    pub const SLOW_CONSUMER: u16 = 4009;
    /// Server restarting.
    pub const SERVER_RESTARTING: u16 = 4012;
    /// Rate limited.
    pub const RATE_LIMITED: u16 = 4029;
}

/// What a client does after the connection closed with a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosePolicy {
    /// Reconnect with the usual backoff.
    Reconnect,
    /// Reconnect, slowly: the token was refused (backoff jumps to its cap).
    ReconnectSlowly,
    /// Do not reconnect.
    Stop,
}

/// The policy for a close code sent by the server (PROTOCOL.md section 4).
pub fn close_policy(code: u16) -> ClosePolicy {
    match code {
        close_code::UNAUTHORIZED => ClosePolicy::ReconnectSlowly,
        close_code::FORBIDDEN => ClosePolicy::Stop,
        _ => ClosePolicy::Reconnect,
    }
}

/// How a transport ended, as the shell saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseInfo {
    /// The peer sent a close frame, or the shell knows the code (1006 when none).
    Frame {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The upgrade was answered with an HTTP status other than 101.
    Http {
        /// The status.
        status: u16,
    },
    /// The connection failed without a close: refused, reset, DNS, TLS...
    Failed {
        /// What the shell's socket reported.
        error: String,
    },
}

impl CloseInfo {
    /// The close code this maps to (HTTP 401 as 4001, 403 as 4003, 503 as 1013).
    pub fn code(&self) -> u16 {
        match self {
            CloseInfo::Frame { code, .. } => *code,
            CloseInfo::Http { status: 401 } => close_code::UNAUTHORIZED,
            CloseInfo::Http { status: 403 } => close_code::FORBIDDEN,
            CloseInfo::Http { status: 503 } => close_code::TRY_AGAIN_LATER,
            CloseInfo::Http { .. } => close_code::POLICY,
            CloseInfo::Failed { .. } => close_code::ABNORMAL,
        }
    }
}
