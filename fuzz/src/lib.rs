//! The properties the fuzz targets check, one function per target. The targets in
//! `fuzz_targets/` are one-line wrappers, and the workspace's regression tests
//! (`protocol/tests/fuzz_regressions.rs`, `storage/tests/fuzz_regressions.rs`) include these
//! same modules with `#[path]` and replay every input saved under `fuzz/regressions/`, so a
//! crash found once stays fixed under `cargo test`.
//!
//! A check returns normally when the code under test behaves, and panics (which libFuzzer
//! reports as a crash) when it does not.

pub mod protocol_checks;
pub mod replay;
pub mod storage_checks;
