//! Replays the committed corpus of the `engines` fuzz target
//! (fuzz/corpus/engines) through the same body the fuzz target runs, so
//! plain `cargo test` on stable checks every input the fuzzer kept.

use std::path::Path;

#[test]
fn replay_engines_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/engines");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| carp_engine::fuzzing::engines(&data));
        assert!(result.is_ok(), "{} broke an invariant", path.display());
        inputs += 1;
    }
    assert!(inputs >= 20, "corpus has only {inputs} inputs");
}
