//! The full receive path, parse and verify, on arbitrary bytes. The body is
//! `carp_proto::fuzzing::receive`, which `cargo test` also runs over the
//! committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| carp_proto::fuzzing::receive(data));
