//! The `wsgate` binary.
fn main() {}
