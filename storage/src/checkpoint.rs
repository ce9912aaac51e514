//! `partition.checkpoint`: the small state file a partition keeps next to its segments —
//! the log start offset (moved by DeleteRecords; must survive restart), the recovery point
//! (every batch below it is durable and was validated) and whether the last shutdown was
//! clean. Replaced atomically: write a temp file, fsync it, rename it over, fsync the dir.

use std::io;
use std::path::Path;

use crate::error::{Result, StorageError};
use crate::io::{read_all, Io, OpenMode};

pub(crate) const CHECKPOINT_FILE: &str = "partition.checkpoint";
const TEMP_FILE: &str = "partition.checkpoint.tmp";
const MAGIC_LINE: &str = "eddy partition checkpoint v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    pub(crate) clean_shutdown: bool,
}

/// What was found on disk.
#[derive(Debug)]
pub(crate) enum Loaded {
    Missing,
    Valid(Checkpoint),
    /// Present but unreadable; the reason is reported and the file is ignored.
    Damaged(String),
}

fn body(c: &Checkpoint) -> String {
    format!(
        "{MAGIC_LINE}\nlog_start_offset={}\nrecovery_point={}\nclean_shutdown={}\n",
        c.log_start_offset, c.recovery_point, c.clean_shutdown
    )
}

fn encode(c: &Checkpoint) -> String {
    let body = body(c);
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body}crc32={crc:08x}\n")
}

fn decode(text: &str) -> std::result::Result<Checkpoint, String> {
    let (body, crc_line) = match text.trim_end_matches('\n').rsplit_once('\n') {
        Some((b, c)) => (format!("{b}\n"), c),
        None => return Err("it has too few lines".to_owned()),
    };
    let stored = crc_line
        .strip_prefix("crc32=")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("its checksum line is missing")?;
    if crc32fast::hash(body.as_bytes()) != stored {
        return Err("its checksum does not match".to_owned());
    }
    let mut lines = body.lines();
    if lines.next() != Some(MAGIC_LINE) {
        return Err("it does not start with the expected header".to_owned());
    }
    let mut field = |name: &str| -> std::result::Result<String, String> {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix('='))
            .map(str::to_owned)
            .ok_or_else(|| format!("field {name} is missing"))
    };
    let num = |s: String, name: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("field {name} is not a number"))
    };
    let log_start_offset = num(field("log_start_offset")?, "log_start_offset")?;
    let recovery_point = num(field("recovery_point")?, "recovery_point")?;
    let clean_shutdown = match field("clean_shutdown")?.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err("field clean_shutdown is not true or false".to_owned()),
    };
    Ok(Checkpoint {
        log_start_offset,
        recovery_point,
        clean_shutdown,
    })
}

pub(crate) fn read(io: &dyn Io, dir: &Path) -> Result<Loaded> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match io.open(&path, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(StorageError::io("open", path, e)),
    };
    let bytes = read_all(&*file).map_err(|e| StorageError::io("read from", &path, e))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Loaded::Damaged("it is not text".to_owned()));
    };
    Ok(match decode(&text) {
        Ok(c) => Loaded::Valid(c),
        Err(reason) => Loaded::Damaged(reason),
    })
}

pub(crate) fn write(io: &dyn Io, dir: &Path, c: &Checkpoint) -> Result<()> {
    let tmp = dir.join(TEMP_FILE);
    let path = dir.join(CHECKPOINT_FILE);
    let file = io
        .open(&tmp, OpenMode::Create)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    let text = encode(c);
    file.set_len(0)
        .map_err(|e| StorageError::io("truncate", &tmp, e))?;
    file.write_at(text.as_bytes(), 0)
        .map_err(|e| StorageError::io("write to", &tmp, e))?;
    file.sync_data()
        .map_err(|e| StorageError::io("fsync", &tmp, e))?;
    io.rename(&tmp, &path)
        .map_err(|e| StorageError::io("rename into place", &path, e))?;
    io.sync_dir(dir)
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let c = Checkpoint {
            log_start_offset: 42,
            recovery_point: 1000,
            clean_shutdown: true,
        };
        let text = encode(&c);
        assert_eq!(decode(&text), Ok(c));
        let damaged = text.replace("42", "43");
        assert!(decode(&damaged).is_err());
        assert!(decode("").is_err());
        assert!(decode(&text[..text.len() / 2]).is_err());
    }
}
