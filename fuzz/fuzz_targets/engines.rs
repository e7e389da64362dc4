//! Several engines in the simulator, driven by arbitrary faults and
//! injected adverts; the simulator's invariants are the oracle.
//! The body is `carp_engine::fuzzing::engines`, which `cargo test` also
//! runs over the committed corpus (fuzz/corpus/engines).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    carp_engine::fuzzing::engines(data);
});
