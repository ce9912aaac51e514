//! An in-memory file system for tests: it remembers what was made durable (file data by
//! `sync_data`, directory entries by `sync_dir`), can simulate a crash that loses the rest
//! (optionally tearing the last write at a chosen byte), and can fail the Nth write, sync,
//! rename or remove (a failed rename or remove changes nothing).
//!
//! It has no memory maps, so the log loads sealed indexes into memory when running on it.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::{Io, IoFile, OpenMode};

/// What survives [`SimIo::crash`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashOptions {
    /// `false` models power loss: files go back to their last synced contents and
    /// directories to their last synced entries. `true` models a process crash: everything
    /// written stays (except for the torn last write, if asked for).
    pub keep_unsynced: bool,
    /// If set, the very last `write_at` before the crash reaches the disk only partly: this many
    /// of its bytes (clamped to its length) survive, the rest is as before the write.
    pub torn_last_write_bytes: Option<usize>,
}

/// The in-memory file system. Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct SimIo {
    state: Arc<Mutex<State>>,
    control: Arc<Mutex<Control>>,
}

#[derive(Debug, Default)]
struct State {
    /// Directory entries as the running process sees them.
    live: HashMap<PathBuf, Arc<SimFile>>,
    /// Directory entries as of the last `sync_dir` of their directory.
    durable: HashMap<PathBuf, Arc<SimFile>>,
    dirs: BTreeSet<PathBuf>,
}

/// Counters and armed faults, shared with every file so writes and syncs can consult them.
#[derive(Debug, Default)]
struct Control {
    writes: u64,
    syncs: u64,
    renames: u64,
    removes: u64,
    fail_write_at: Option<u64>,
    fail_sync_at: Option<u64>,
    fail_rename_at: Option<u64>,
    fail_remove_at: Option<u64>,
    last_write: Option<LastWrite>,
}

#[derive(Debug)]
struct LastWrite {
    file: Arc<SimFile>,
    offset: usize,
    /// Length of the file before the write.
    old_len: usize,
    /// What the written range held before (only the part below `old_len`).
    old_bytes: Vec<u8>,
    new_bytes: Vec<u8>,
}

/// One in-memory file.
#[derive(Debug)]
pub struct SimFile {
    data: Mutex<FileData>,
    control: Arc<Mutex<Control>>,
}

#[derive(Debug, Default, Clone)]
struct FileData {
    current: Vec<u8>,
    synced: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a test thread must not turn every later call into a second panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl SimIo {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// This file system as the trait object the log takes.
    pub fn as_io(&self) -> Arc<dyn Io> {
        Arc::new(self.clone())
    }

    /// Makes the `n`th `write_at` from now (1 = the next one) fail.
    pub fn fail_nth_write(&self, n: u64) {
        let mut c = lock(&self.control);
        c.fail_write_at = Some(c.writes + n);
    }

    /// Makes the `n`th sync (`sync_data` or `sync_dir`) from now (1 = the next one) fail.
    pub fn fail_nth_sync(&self, n: u64) {
        let mut c = lock(&self.control);
        c.fail_sync_at = Some(c.syncs + n);
    }

    /// Makes the `n`th `rename` from now (1 = the next one) fail, leaving both names as
    /// they were.
    pub fn fail_nth_rename(&self, n: u64) {
        let mut c = lock(&self.control);
        c.fail_rename_at = Some(c.renames + n);
    }

    /// Makes the `n`th `remove` from now (1 = the next one) fail, leaving the file in place.
    pub fn fail_nth_remove(&self, n: u64) {
        let mut c = lock(&self.control);
        c.fail_remove_at = Some(c.removes + n);
    }

    /// Disarms injected faults.
    pub fn clear_faults(&self) {
        lock(&self.control).disarm();
    }

    /// How many `write_at` calls have been made so far.
    pub fn write_count(&self) -> u64 {
        lock(&self.control).writes
    }

    /// How many syncs have been made so far.
    pub fn sync_count(&self) -> u64 {
        lock(&self.control).syncs
    }

    /// How many renames have been attempted so far.
    pub fn rename_count(&self) -> u64 {
        lock(&self.control).renames
    }

    /// How many removes have been attempted so far.
    pub fn remove_count(&self) -> u64 {
        lock(&self.control).removes
    }

    /// Simulates a crash. Handles opened before it keep working on detached copies, so a
    /// log must be dropped (not closed) before and reopened after.
    pub fn crash(&self, options: CrashOptions) {
        let mut state = lock(&self.state);
        let mut control = lock(&self.control);
        let last = control.last_write.take();
        let entries = if options.keep_unsynced {
            state.live.clone()
        } else {
            state.durable.clone()
        };
        let mut fresh: HashMap<PathBuf, Arc<SimFile>> = HashMap::new();
        for (path, file) in entries {
            let old = lock(&file.data).clone();
            let mut bytes = if options.keep_unsynced {
                old.current
            } else {
                old.synced
            };
            if let (Some(keep), Some(w)) = (options.torn_last_write_bytes, last.as_ref()) {
                if Arc::ptr_eq(&w.file, &file) {
                    if options.keep_unsynced {
                        // Undo the last write, then redo only its first `keep` bytes.
                        let end = w.offset + w.old_bytes.len();
                        if end <= bytes.len() {
                            bytes[w.offset..end].copy_from_slice(&w.old_bytes);
                        }
                        bytes.truncate(w.old_len);
                    }
                    let keep = keep.min(w.new_bytes.len());
                    let end = w.offset + keep;
                    if bytes.len() < end {
                        bytes.resize(end, 0);
                    }
                    bytes[w.offset..end].copy_from_slice(&w.new_bytes[..keep]);
                }
            }
            let data = FileData {
                current: bytes.clone(),
                synced: bytes,
            };
            fresh.insert(
                path,
                Arc::new(SimFile {
                    data: Mutex::new(data),
                    control: Arc::clone(&self.control),
                }),
            );
        }
        state.live = fresh.clone();
        state.durable = fresh;
        control.disarm();
    }

    /// A copy of the current (not necessarily synced) contents of `path`.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = lock(&self.state);
        state.live.get(path).map(|f| lock(&f.data).current.clone())
    }

    /// Replaces the contents of `path` (as if synced), creating it and its directory entry
    /// durably if missing. For corruption tests.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) {
        let mut state = lock(&self.state);
        let file = state
            .live
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                Arc::new(SimFile {
                    data: Mutex::new(FileData::default()),
                    control: Arc::clone(&self.control),
                })
            })
            .clone();
        {
            let mut d = lock(&file.data);
            d.current = bytes.to_vec();
            d.synced = bytes.to_vec();
        }
        state.durable.insert(path.to_path_buf(), file);
    }

    /// Removes `path` durably. For tests that delete an index behind the log's back.
    pub fn delete_file(&self, path: &Path) {
        let mut state = lock(&self.state);
        state.live.remove(path);
        state.durable.remove(path);
    }
}

impl Control {
    fn disarm(&mut self) {
        self.fail_write_at = None;
        self.fail_sync_at = None;
        self.fail_rename_at = None;
        self.fail_remove_at = None;
    }
}

/// Counts a rename or remove and fails it if armed.
fn check_dir_op(control: &Mutex<Control>, rename: bool) -> io::Result<()> {
    let mut c = lock(control);
    let (count, armed) = if rename {
        c.renames += 1;
        (c.renames, c.fail_rename_at)
    } else {
        c.removes += 1;
        (c.removes, c.fail_remove_at)
    };
    if armed == Some(count) {
        return Err(injected(if rename { "rename" } else { "remove" }));
    }
    Ok(())
}

impl SimFile {
    fn check_write(&self) -> io::Result<()> {
        let mut c = lock(&self.control);
        c.writes += 1;
        if c.fail_write_at == Some(c.writes) {
            return Err(injected("write"));
        }
        Ok(())
    }
}

fn check_sync(control: &Mutex<Control>) -> io::Result<()> {
    let mut c = lock(control);
    c.syncs += 1;
    if c.fail_sync_at == Some(c.syncs) {
        return Err(injected("fsync"));
    }
    Ok(())
}

impl IoFile for Arc<SimFile> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let d = lock(&self.data);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(d.current.len());
        let n = buf.len().min(d.current.len() - start);
        buf[..n].copy_from_slice(&d.current[start..start + n]);
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_write()?;
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        let mut d = lock(&self.data);
        let old_len = d.current.len();
        let old_end = (offset + buf.len()).min(old_len);
        let old_bytes = if offset < old_end {
            d.current[offset..old_end].to_vec()
        } else {
            Vec::new()
        };
        let end = offset + buf.len();
        if d.current.len() < end {
            d.current.resize(end, 0);
        }
        d.current[offset..end].copy_from_slice(buf);
        drop(d);
        lock(&self.control).last_write = Some(LastWrite {
            file: Arc::clone(self),
            offset,
            old_len,
            old_bytes,
            new_bytes: buf.to_vec(),
        });
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        lock(&self.data).current.resize(len, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        check_sync(&self.control)?;
        let mut d = lock(&self.data);
        d.synced = d.current.clone();
        drop(d);
        // A synced write is durable: a later crash must not tear it.
        let mut c = lock(&self.control);
        if c.last_write
            .as_ref()
            .is_some_and(|w| Arc::ptr_eq(&w.file, self))
        {
            c.last_write = None;
        }
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.data).current.len() as u64)
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl Io for SimIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
        let mut state = lock(&self.state);
        if let Some(f) = state.live.get(path) {
            return Ok(Arc::new(Arc::clone(f)));
        }
        if mode == OpenMode::Existing {
            return Err(not_found(path));
        }
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !state.dirs.contains(&parent) {
            return Err(not_found(&parent));
        }
        let file = Arc::new(SimFile {
            data: Mutex::new(FileData::default()),
            control: Arc::clone(&self.control),
        });
        state.live.insert(path.to_path_buf(), Arc::clone(&file));
        Ok(Arc::new(file))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        check_dir_op(&self.control, false)?;
        let mut state = lock(&self.state);
        state
            .live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        check_dir_op(&self.control, true)?;
        let mut state = lock(&self.state);
        let file = state.live.remove(from).ok_or_else(|| not_found(from))?;
        state.live.insert(to.to_path_buf(), file);
        Ok(())
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = lock(&self.state);
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        // Directories themselves are treated as durable at once; only their entries are not.
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        check_sync(&self.control)?;
        let mut state = lock(&self.state);
        state.durable.retain(|p, _| p.parent() != Some(dir));
        let entries: Vec<_> = state
            .live
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, f)| (p.clone(), Arc::clone(f)))
            .collect();
        state.durable.extend(entries);
        Ok(())
    }
}
