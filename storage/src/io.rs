//! The file-system seam. Every byte the log reads or writes goes through [`Io`] and
//! [`IoFile`], so tests can swap in [`crate::sim::SimIo`] to inject faults and simulate
//! crashes, while production uses [`StdIo`].

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::mmap::MappedFile;

/// How [`Io::open`] treats a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file for reading and writing; `NotFound` if it is missing.
    Existing,
    /// Open for reading and writing, creating an empty file if it is missing.
    Create,
}

/// One open file. Positional I/O only, so one handle can serve the writer and any number of
/// concurrent readers without a shared cursor.
pub trait IoFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and the metadata needed to read it, such as its size) durable.
    fn sync_data(&self) -> io::Result<()>;
    /// The file's current size in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// A read-only memory map of the whole file, if the backend supports it (`Ok(None)`
    /// otherwise, and the caller reads the file into memory instead). Callers only map files
    /// they will never write or truncate again.
    fn map_readonly(&self) -> io::Result<Option<MappedFile>> {
        Ok(None)
    }
}

/// Directory-level operations.
pub trait Io: Send + Sync + Debug {
    /// Opens `path` for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names (not paths) of the regular files in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes `dir`'s entries (creations, removals, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Real files through `std::fs`; sealed index files can be memory-mapped.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdIo;

impl StdIo {
    /// The default backend as a trait object, ready for [`crate::PartitionLog::open_with_io`].
    pub fn shared() -> Arc<dyn Io> {
        Arc::new(StdIo)
    }
}

#[derive(Debug)]
struct StdFile {
    file: File,
    /// For the test-only fault hook ([`fault`]); absent from release builds.
    #[cfg(debug_assertions)]
    path: std::path::PathBuf,
}

/// A fault hook for end-to-end tests of the real `eddy` binary, where [`crate::sim::SimIo`]
/// cannot be swapped in. It exists only in builds with debug assertions (what `cargo build`
/// and `cargo test` produce, and what the e2e tests run); release builds do not contain it,
/// so no environment variable can make a production broker fail its writes.
///
/// With `EDDY_FAULT_FILE=PATH` set, every `write_at` and `sync_data` of a [`StdIo`] file reads
/// PATH (if it exists); each line `OP TEXT` (OP `write` or `fsync`) makes that operation fail
/// with an I/O error on every file whose path contains TEXT, e.g. `fsync /topic-0/`, and a
/// line `OP-hang TEXT` makes it wait (a stalled disk) until the line is gone. Removing the
/// line (or the file) ends the fault. Reading the control file on each call is slow, and fine
/// for tests.
#[cfg(debug_assertions)]
pub mod fault {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    /// The environment variable naming the control file.
    pub const ENV: &str = "EDDY_FAULT_FILE";

    /// The control file, if the hook is enabled.
    pub fn control_file() -> Option<&'static Path> {
        static CONTROL: OnceLock<Option<PathBuf>> = OnceLock::new();
        CONTROL
            .get_or_init(|| std::env::var_os(ENV).map(PathBuf::from))
            .as_deref()
    }

    /// Waits while the control file asks `op` on `path` to hang, then fails if it asks for
    /// it to fail.
    pub(crate) fn check(op: &str, path: &Path) -> io::Result<()> {
        let Some(ctl) = control_file() else {
            return Ok(());
        };
        let path = path.to_string_lossy();
        let hang = format!("{op}-hang");
        loop {
            let text = std::fs::read_to_string(ctl).unwrap_or_default();
            let asks = |name: &str| {
                text.lines().any(|line| {
                    line.trim().split_once(' ').is_some_and(|(o, what)| {
                        let what = what.trim();
                        o == name && !what.is_empty() && path.contains(what)
                    })
                })
            };
            if asks(&hang) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            if asks(op) {
                return Err(io::Error::other(format!(
                    "injected {op} failure on {path} ({ENV})"
                )));
            }
            return Ok(());
        }
    }
}

impl IoFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        #[cfg(debug_assertions)]
        fault::check("write", &self.path)?;
        self.file.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        #[cfg(debug_assertions)]
        fault::check("fsync", &self.path)?;
        self.file.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn map_readonly(&self) -> io::Result<Option<MappedFile>> {
        MappedFile::map(&self.file)
    }
}

impl Io for StdIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(mode == OpenMode::Create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(StdFile {
            file,
            #[cfg(debug_assertions)]
            path: path.to_path_buf(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, or fewer only at the end of the file;
/// returns how many were read.
pub(crate) fn read_full_at(file: &dyn IoFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Reads the whole file into memory.
pub(crate) fn read_all(file: &dyn IoFile) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.len()?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to read"))?;
    let mut buf = vec![0u8; len];
    let n = read_full_at(file, &mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}
