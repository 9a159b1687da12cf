//! The state machine under arbitrary input sequences: the invariants of
//! `tests/model` hold after every input (the same model runs under cargo-fuzz
//! in `fuzz/`).

mod model;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn invariants_hold_for_any_input_sequence(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        model::Model::run(&bytes);
    }
}

#[test]
fn the_model_reaches_every_state() {
    // Guard against a model that cannot fail because it never gets anywhere:
    // a scripted run through connect, open, traffic, loss and close.
    let script: &[u8] = &[
        0, 1, // hublink dialect, seed 1
        11, 0, // subscribe a
        0, // connect
        1, // open
        2, 0, 0, 3, 0, // message a seq 3
        9, // timeouts...
        5, 1, // close 1006
        9, 1,  // retry, open
        17, // close by user
    ];
    model::Model::run(script);
}
