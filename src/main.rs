//! The `kataar` binary.
fn main() {}
