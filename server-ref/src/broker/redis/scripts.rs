//! The Lua scripts the Redis broker runs with `EVALSHA`, kept as `.lua` files
//! beside this one (each starts with what its `KEYS` and `ARGV` are).

/// Publishes one message. KEYS: meta, stream. ARGV: channel, a fresh epoch (used
/// when the topic has none), data JSON, timestamp ms, event id or "", history
/// size, history age ms, meta TTL ms. Returns `{seq, epoch}`.
pub const PUBLISH: &str = include_str!("publish.lua");

/// Reads a topic's position, and optionally its replay and latest entry, in one
/// step. KEYS: meta, stream. ARGV: a fresh epoch, `since` seq or "", "1" for
/// the latest entry, history size, meta TTL ms. Returns `{epoch, seq, replay
/// entries or false, latest entry or false}`.
pub const SNAPSHOT: &str = include_str!("snapshot.lua");
