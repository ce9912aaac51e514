//! Swapping cleaned segments in, crash-safely, and finishing an interrupted swap at open.
//!
//! The replaced segments and the cleaned ones cover the same offsets, and the first cleaned
//! segment has the same name as the first replaced one, so the old and new files cannot
//! simply coexist under final names. The protocol (every step through [`Io`], every phase
//! ended by an fsync of the directory):
//!
//! 1. Prepare: rename every `X.cleaned` to `X.swap`, except the first output's `.log`.
//! 2. Commit: rename the first output's `.log.cleaned` to `.log.swap`. From the moment that
//!    rename is durable, no `*.cleaned` file remains and the new segments win.
//! 3. Delete every file of every replaced segment (`.log` first).
//! 4. Rename each output's `.log.swap`, then its `.index.swap` and `.timeindex.swap`, to the
//!    final names.
//!
//! At open ([`recover_interrupted`]): if any `*.cleaned` file exists, the commit never became
//! durable: delete every `*.swap`, fsync, then every `*.cleaned` (in that order, so a crash
//! during the clean-up still finds a `.cleaned` file and does not mistake the rest for a
//! commit). Otherwise, if `*.swap` files exist, the commit happened: for each `B.log.swap`,
//! delete every segment file whose base offset is in `[B, end of B.log.swap)`, fsync, rename
//! the `.swap` files to their final names, fsync. An index `.swap` without its `.log.swap`
//! belongs to a log already renamed in step 4 (step 3 was durable before step 4 began).
//!
//! Install runs only one compaction at a time (see `CompactionState::lease`) and first removes
//! any foreign `.cleaned`/`.swap` file, so the files it finds at open are its own.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::run::CLEANED;
use super::{compaction_error, CompactedSegments, CompactionReport};
use crate::error::{Result, StorageError};
use crate::io::{Io, OpenMode};
use crate::log::PartitionLog;
use crate::recovery::{parse_name, Kind, RecoveryReport};
use crate::segment::{Segment, SegmentPaths, Step, Walker};

/// Suffix of a compaction output between the commit and its final rename.
const SWAP: &str = ".swap";

impl PartitionLog {
    /// Installs the result of [`super::CompactionPlan::run`]: quick, on the writer. If the log
    /// no longer starts with the planned segments (retention or DeleteRecords removed some),
    /// the output is deleted and the report says it was discarded. Otherwise the files are
    /// swapped in (see this module's protocol), and a new segment list is published: readers
    /// holding the old one keep reading the old, now unlinked, files.
    ///
    /// A failure while swapping latches the log like any write failure; reopening finishes or
    /// undoes the swap.
    pub fn install_compaction(&mut self, mut done: CompactedSegments) -> Result<CompactionReport> {
        if !Arc::ptr_eq(&done.lease, &self.compaction.lease) {
            return Err(compaction_error(
                &self.dir,
                "the compacted segments were produced for another log",
            ));
        }
        if let Err(e) = self.check_ok() {
            // Leave the files to recovery: a latched log touches nothing on disk.
            done.settled = true;
            return Err(e);
        }
        let k = done.replaced.len();
        let still_there = k < self.segments.len()
            && done
                .replaced
                .iter()
                .zip(&self.segments)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !still_there {
            done.remove_files();
            let reason = "segments it planned to replace were deleted meanwhile (by retention or \
                          DeleteRecords)";
            tracing::info!(dir = %self.dir.display(), "compaction discarded: {reason}");
            return Ok(CompactionReport {
                discarded: true,
                discard_reason: Some(reason.to_owned()),
                ..done.report()
            });
        }
        let report = done.report();
        if !done.outputs.is_empty() {
            done.settled = true;
            self.swap_in(&done).inspect_err(|e| self.latch(e))?;
            let mut segments: Vec<Arc<Segment>> =
                done.outputs.iter().map(|o| Arc::clone(&o.seg)).collect();
            segments.extend(self.segments.drain(k..));
            self.segments = segments;
            self.publish();
            tracing::info!(dir = %self.dir.display(), "{report}");
        }
        self.compaction.clean_end = Some(report.end_offset);
        self.compaction.recheck_at_ms = done.recheck_at_ms;
        Ok(report)
    }

    /// Steps 0-4 of the protocol.
    fn swap_in(&self, done: &CompactedSegments) -> Result<()> {
        let io = &*self.io;
        let dir = &self.dir;
        let ours: Vec<PathBuf> = done
            .outputs
            .iter()
            .flat_map(|o| o.cleaned.all().map(Path::to_path_buf))
            .collect();
        remove_foreign_temporaries(io, dir, &ours)?;
        let swap: Vec<SegmentPaths> = done
            .outputs
            .iter()
            .map(|o| o.seg.paths.with_suffix(SWAP))
            .collect();
        let rename = |from: &Path, to: &Path| {
            io.rename(from, to)
                .map_err(|e| StorageError::io("rename", from, e))
        };
        let sync_dir = || {
            io.sync_dir(dir)
                .map_err(|e| StorageError::io("fsync directory", dir, e))
        };
        // 1. Prepare.
        for (i, (o, s)) in done.outputs.iter().zip(&swap).enumerate() {
            rename(&o.cleaned.index, &s.index)?;
            rename(&o.cleaned.timeindex, &s.timeindex)?;
            if i > 0 {
                rename(&o.cleaned.log, &s.log)?;
            }
        }
        sync_dir()?;
        // 2. Commit.
        if let (Some(o), Some(s)) = (done.outputs.first(), swap.first()) {
            rename(&o.cleaned.log, &s.log)?;
        }
        sync_dir()?;
        // 3. Delete the replaced segments.
        for seg in &done.replaced {
            for path in seg.paths.all() {
                remove_if_present(io, path)?;
            }
        }
        sync_dir()?;
        // 4. Final names.
        for (o, s) in done.outputs.iter().zip(&swap) {
            rename(&s.log, &o.seg.paths.log)?;
            rename(&s.index, &o.seg.paths.index)?;
            rename(&s.timeindex, &o.seg.paths.timeindex)?;
        }
        sync_dir()
    }
}

fn remove_if_present(io: &dyn Io, path: &Path) -> Result<bool> {
    match io.remove(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io("delete", path, e)),
    }
}

fn is_temporary(name: &str) -> bool {
    name.ends_with(CLEANED) || name.ends_with(SWAP)
}

/// Removes `.cleaned`/`.swap` files that are not `ours` (left by an abandoned run whose
/// clean-up failed), so that at open every such file belongs to this install.
fn remove_foreign_temporaries(io: &dyn Io, dir: &Path, ours: &[PathBuf]) -> Result<()> {
    let names = io
        .list_dir(dir)
        .map_err(|e| StorageError::io("list directory", dir, e))?;
    let mut removed = false;
    for name in names.iter().filter(|n| is_temporary(n)) {
        let path = dir.join(name);
        if !ours.contains(&path) {
            removed |= remove_if_present(io, &path)?;
        }
    }
    if removed {
        io.sync_dir(dir)
            .map_err(|e| StorageError::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Offset after the last batch of a committed `.log.swap` file: the end of the range it
/// replaces.
fn swap_end(io: &dyn Io, path: &Path, base: i64) -> Result<i64> {
    let file = io
        .open(path, OpenMode::Existing)
        .map_err(|e| StorageError::io("open", path, e))?;
    let len = file
        .len()
        .map_err(|e| StorageError::io("read the size of", path, e))?;
    let mut walker = Walker::new(&*file, 0, len, 256 * 1024);
    let mut end = base;
    loop {
        match walker
            .next(false)
            .map_err(|e| StorageError::io("read from", path, e))?
        {
            Step::End => return Ok(end),
            Step::Batch(b) => end = b.last_offset.saturating_add(1),
            Step::Invalid { pos, reason } => {
                return Err(StorageError::Corrupt {
                    path: path.to_path_buf(),
                    position: pos,
                    reason: format!(
                        "{reason} (an interrupted compaction's output should have been complete; \
                         move the .swap files away to keep the uncompacted segments)"
                    ),
                })
            }
        }
    }
}

/// At open, before segments are read: undoes a compaction whose commit never became durable,
/// or finishes one that committed (see this module's protocol).
pub(crate) fn recover_interrupted(
    io: &dyn Io,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<()> {
    let names = io
        .list_dir(dir)
        .map_err(|e| StorageError::io("list directory", dir, e))?;
    let cleaned: Vec<&String> = names.iter().filter(|n| n.ends_with(CLEANED)).collect();
    let swaps: Vec<&String> = names.iter().filter(|n| n.ends_with(SWAP)).collect();
    if cleaned.is_empty() && swaps.is_empty() {
        return Ok(());
    }
    let sync_dir = || {
        io.sync_dir(dir)
            .map_err(|e| StorageError::io("fsync directory", dir, e))
    };
    if !cleaned.is_empty() {
        for group in [&swaps, &cleaned] {
            for name in group.iter() {
                let path = dir.join(name);
                remove_if_present(io, &path)?;
                report.stray_files_removed.push(path);
            }
            sync_dir()?;
        }
        if !swaps.is_empty() {
            tracing::warn!(dir = %dir.display(),
                "discarded the output of a compaction interrupted before it committed");
        }
        return Ok(());
    }
    // Committed: the .swap files replace every segment file in their ranges.
    let final_name = |name: &str| name.strip_suffix(SWAP).map(str::to_owned);
    let mut logs = Vec::new();
    for name in &swaps {
        if let Some((base, Kind::Log)) = final_name(name).as_deref().and_then(parse_name) {
            let end = swap_end(io, &dir.join(name), base)?;
            logs.push((base, end));
        }
    }
    logs.sort_unstable();
    for name in &names {
        let Some((base, _)) = parse_name(name) else {
            continue;
        };
        if logs.iter().any(|&(b, e)| (b..e).contains(&base)) {
            remove_if_present(io, &dir.join(name))?;
        }
    }
    sync_dir()?;
    // Logs first, as install does. Install only ever makes `.swap` segment files; anything
    // else is junk.
    let mut ordered = swaps.clone();
    ordered.sort_by_key(|n| !n.ends_with(&format!(".log{SWAP}")));
    for name in ordered {
        let from = dir.join(name);
        match final_name(name).filter(|t| parse_name(t).is_some()) {
            Some(target) => io
                .rename(&from, &dir.join(target))
                .map_err(|e| StorageError::io("rename", &from, e))?,
            None => {
                remove_if_present(io, &from)?;
                report.stray_files_removed.push(from);
            }
        }
    }
    sync_dir()?;
    for &(base, _) in &logs {
        report.compaction_swaps_completed.push(base);
    }
    tracing::warn!(dir = %dir.display(), segments = ?report.compaction_swaps_completed,
        "finished installing the output of a compaction interrupted after it committed");
    Ok(())
}
