//! One module per protocol, each with its own parsing and replies; what they
//! share: `subscriptions` (what a connection follows, and the one subscribe
//! pipeline with its typed refusals), `delivery` (the one subscriber kind),
//! `wire` (reading client JSON).

pub(crate) mod actions;
mod delivery;
pub(crate) mod devices;
pub(crate) mod hublink;
pub(crate) mod machines;
pub(crate) mod power;
pub(crate) mod publish;
pub(crate) mod status;
mod subscriptions;
mod wire;
