//! What the kit's end-to-end tests share: the binaries they run.

use std::path::PathBuf;

/// The load generator built for this test run.
pub const LOADGEN: &str = env!("CARGO_BIN_EXE_kataar-loadgen");

/// The engine binary built next to the load generator (`cargo build` / `cargo nextest run
/// --workspace` build both).
pub fn kataar_bin() -> PathBuf {
    let bin = PathBuf::from(LOADGEN).with_file_name("kataar");
    assert!(
        bin.is_file(),
        "{} is missing: build the engine first (cargo build -p kataar)",
        bin.display()
    );
    bin
}
