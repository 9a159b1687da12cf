//! The native shell's fast path for messages: a frame's top-level fields read
//! by serde_json straight from the text, its payload left as raw JSON.
//!
//! [`Connection::handle_text`](crate::Connection::handle_text) builds a whole
//! `serde_json::Value` per frame and the application then deserialises its
//! type from that tree: two passes and an allocation per field. A shell that
//! reads a frame's [`Header`] with [`RawFrame::parse`] instead, and hands it
//! to [`Connection::handle_header`](crate::Connection::handle_header), builds
//! nothing for an ordinary message: on [`Admit::Deliver`](crate::Admit) the
//! application's type is deserialised from [`RawFrame::data`] directly, one
//! pass over the payload. Anything else (control frames, a `seq` that is not
//! an integer, escapes the borrow cannot hold, a batch) goes the whole-value
//! way, so the two paths decide alike (`tests/header.rs`).

use crate::protocol::Header;
use alloc::borrow::Cow;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A frame's top-level fields, borrowed from its text where they can be.
#[derive(Debug, Deserialize)]
pub struct RawFrame<'a> {
    /// `type`.
    #[serde(rename = "type", borrow)]
    pub kind: Option<Cow<'a, str>>,
    /// `topic`.
    #[serde(borrow)]
    pub topic: Option<Cow<'a, str>>,
    /// `seq` (a frame whose `seq` is not a non-negative integer does not parse here).
    pub seq: Option<u64>,
    /// `epoch`.
    #[serde(borrow)]
    pub epoch: Option<Cow<'a, str>>,
    /// `data`, as its JSON text (`None` when absent or `null`).
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
    /// `timestamp`, as its JSON text.
    #[serde(borrow)]
    pub timestamp: Option<&'a RawValue>,
}

impl<'a> RawFrame<'a> {
    /// The frame's fields, when it is one JSON object these fields fit;
    /// `None` sends it down [`handle_text`](crate::Connection::handle_text).
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// What [`Connection::handle_header`](crate::Connection::handle_header) reads.
    pub fn header(&self) -> Header<'_> {
        Header {
            kind: self.kind.as_deref(),
            topic: self.topic.as_deref(),
            seq: self.seq,
            epoch: self.epoch.as_deref(),
            has_data: self.data.is_some(),
        }
    }
}
