//! Replays the inputs saved under `fuzz/regressions/<target>/` through a check, for the
//! workspace's regression tests. Uses only `std`, so test crates can include it with `#[path]`.
//!
//! A check can fail in two ways: it panics, or the code under test panics and catches the
//! panic itself (the protocol decoder turns a codec panic into an error, which is still a bug,
//! and libFuzzer reports it as a crash). A panic hook notices both.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

thread_local! {
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            PANICKED.with(|p| p.set(true));
            previous(info);
        }));
    });
}

/// The saved inputs of `target`, sorted by name. `regressions` is the `fuzz/regressions`
/// directory.
pub fn inputs(regressions: &Path, target: &str) -> Vec<PathBuf> {
    let dir = regressions.join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{} holds no inputs: keep at least the hand-made seeds there",
        dir.display()
    );
    files
}

/// Runs `check` on every saved input of `target` and fails listing each input that panicked
/// (in the check or, caught, inside the code under test). Returns how many inputs ran.
pub fn replay(regressions: &Path, target: &str, check: fn(&[u8])) -> usize {
    install_hook();
    let files = inputs(regressions, target);
    let mut failures = Vec::new();
    for file in &files {
        let data =
            std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        PANICKED.with(|p| p.set(false));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(&data)));
        if outcome.is_err() || PANICKED.with(Cell::get) {
            failures.push(file.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} saved inputs fail the {target} check (messages above): {failures:#?}",
        failures.len(),
        files.len()
    );
    files.len()
}
