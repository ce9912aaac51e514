//! The one module allowed to use `unsafe`: read-only memory maps of sealed index files.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Deref;

/// A read-only memory map of a whole file that is never written or truncated again.
pub struct MappedFile {
    map: memmap2::Mmap,
}

impl MappedFile {
    /// Maps `file` read-only. `Ok(None)` for an empty file (zero-length maps are not allowed).
    pub(crate) fn map(file: &File) -> io::Result<Option<Self>> {
        if file.metadata()?.len() == 0 {
            return Ok(None);
        }
        // SAFETY: a mapping is only sound while nobody truncates or rewrites the file under it.
        // The storage engine maps only index files of sealed segments: after a segment is rolled
        // its index files are complete and this process never writes to or truncates them again
        // (recovery rewrites indexes only at open, before mapping them). Deleting a sealed
        // segment unlinks the file, which keeps the pages of the mapping valid. The partition
        // directory belongs to the broker alone; other processes modifying it is outside the
        // engine's durability assumptions (docs/storage.md).
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(Some(MappedFile { map }))
    }
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedFile")
            .field("len", &self.map.len())
            .finish()
    }
}
