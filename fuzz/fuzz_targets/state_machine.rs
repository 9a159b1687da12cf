//! The core state machine fed an arbitrary sequence of inputs (opens, frames,
//! closes, timeouts at arbitrary times, application calls), checking its
//! invariants after each one. The model is the one `cargo test` runs under
//! proptest in client-core/tests/invariants.rs.
#![no_main]

#[path = "../../client-core/tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    model::Model::run(data);
});
