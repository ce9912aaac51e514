//! Replays every input saved under `fuzz/regressions/storage_recovery` (crashes the fuzz
//! target once found, minimized, plus hand-made seeds) through the same check the
//! `storage_recovery` fuzz target runs: lay the bytes out as a partition directory on the
//! in-memory file system, open it, read it all, append, close and reopen.

use std::path::{Path, PathBuf};

#[allow(unreachable_pub)]
#[path = "../../fuzz/src/storage_checks.rs"]
mod checks;
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/replay.rs"]
mod replay;

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions")
}

#[test]
fn storage_recovery_inputs() {
    replay::replay(&regressions(), "storage_recovery", checks::storage_recovery);
}

fn seed(name: &str) -> Vec<u8> {
    let path = regressions().join("storage_recovery").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The seeds mean what their names say, so the replay above exercises recovery's success
/// paths (validation, truncation, trusting a clean shutdown, two segments) too.
#[test]
fn seeds_are_what_they_claim() {
    let open = |name: &str| {
        checks::open_and_check(&seed(name), checks::Mode::Strict)
            .unwrap_or_else(|| panic!("{name} does not open"))
    };
    // An empty input is an empty `.log` file.
    let r = open("seed-empty");
    assert_eq!((r.log_end_offset, r.created_segment), (0, false), "{r}");
    let r = open("seed-three-batches");
    assert_eq!((r.log_end_offset, r.truncations.len()), (4, 0), "{r}");
    let r = open("seed-torn-tail");
    assert_eq!((r.log_end_offset, r.truncations.len()), (3, 1), "{r}");
    let r = open("seed-bad-crc-in-middle");
    assert_eq!((r.log_end_offset, r.truncations.len()), (1, 1), "{r}");
    let r = open("seed-clean-checkpoint-with-indexes");
    assert!(r.previous_shutdown_clean, "{r}");
    assert_eq!(
        (r.segments_trusted.as_slice(), r.log_end_offset),
        (&[0][..], 4),
        "{r}"
    );
    let r = open("seed-two-segments");
    assert_eq!(
        (r.segments_validated.as_slice(), r.log_end_offset),
        (&[0, 4][..], 5),
        "{r}"
    );
    let r = open("seed-damaged-checkpoint");
    assert!(r.checkpoint_problem.is_some(), "{r}");
}
