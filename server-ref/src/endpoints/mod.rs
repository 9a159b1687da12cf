//! One module per endpoint family.

pub(crate) mod actions;
pub(crate) mod devices;
pub(crate) mod hublink;
pub(crate) mod machines;
pub(crate) mod power;
pub(crate) mod publish;
pub(crate) mod status;
mod wire;
