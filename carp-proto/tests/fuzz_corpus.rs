//! Replays the committed fuzz corpus (fuzz/corpus/receive) through the same
//! body the fuzz target runs, so plain `cargo test` on stable catches a
//! regression on any input the fuzzer once found interesting.

use std::path::Path;

#[test]
fn replay_receive_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/receive");
    let mut inputs = 0;
    let mut accepted_frames = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        carp_proto::fuzzing::receive(&data);
        if carp_proto::datagram::AdvertFrame::parse(&data).is_ok() {
            accepted_frames += 1;
        }
        inputs += 1;
    }
    // The seeds alone are 13 captured frames and their 13 datagrams.
    assert!(inputs >= 26, "corpus has only {inputs} inputs");
    assert!(
        accepted_frames >= 13,
        "seed frames no longer parse: {accepted_frames}"
    );
}
