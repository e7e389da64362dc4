//! The `ucarp` binary (work in progress).
fn main() {}
