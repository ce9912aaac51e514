//! A pipeline's committed progress, written atomically to its state directory.
//!
//! File `checkpoint` = magic `EDDYCKP1`, CRC-32 (of everything after it), u32 length of the
//! JSON metadata, the metadata (source positions, watermark, operator snapshots (as a JSON
//! string when UTF-8, else as an array of byte values), producer id, next output sequence per
//! partition), then the staged output batches: for each, u32 index
//! into the metadata's `staged` list and the batch bytes (length from the list). Written to
//! `checkpoint.tmp`, fsynced, renamed over `checkpoint`, directory fsynced: a crash leaves the
//! old or the new checkpoint, never a torn one (and the CRC catches a torn rename target on
//! file systems that do not order data before rename).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ProcessorError;

const MAGIC: &[u8; 8] = b"EDDYCKP1";

/// One staged output batch: where it goes and its first sequence number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StagedMeta {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) base_sequence: i32,
    pub(crate) records: i32,
    pub(crate) len: u32,
}

/// Everything except the staged batch bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Meta {
    pub(crate) id: u64,
    pub(crate) producer_id: i64,
    /// The epoch that goes with `producer_id` (0 from the broker; a remote cluster says).
    #[serde(default)]
    pub(crate) producer_epoch: i16,
    /// Next offset to read per "topic/partition" key.
    pub(crate) positions: BTreeMap<String, i64>,
    pub(crate) watermark: Option<i64>,
    /// Max event time per source partition, in source order.
    pub(crate) partition_max: Vec<Option<i64>>,
    /// Operator snapshots by operator index.
    #[serde(with = "snapshots")]
    pub(crate) operators: BTreeMap<usize, Vec<u8>>,
    /// Next sequence per "topic/partition" of the output.
    pub(crate) next_sequence: BTreeMap<String, i32>,
    pub(crate) staged: Vec<StagedMeta>,
    pub(crate) records_in: u64,
    pub(crate) records_out: u64,
}

/// Operator snapshots in the metadata: a snapshot that is UTF-8 (the JSON most operators
/// write) is stored as a JSON string, about a third of the size of the array of byte values
/// that others (and checkpoints written before) hold; reading accepts both.
mod snapshots {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(untagged)]
    enum Out<'a> {
        Text(&'a str),
        Bytes(&'a [u8]),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum In {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub(super) fn serialize<S: Serializer>(
        m: &BTreeMap<usize, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| {
            let out = match std::str::from_utf8(v) {
                Ok(t) => Out::Text(t),
                Err(_) => Out::Bytes(v),
            };
            (k, out)
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<usize, Vec<u8>>, D::Error> {
        let m = BTreeMap::<usize, In>::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(k, v)| {
                let bytes = match v {
                    In::Text(t) => t.into_bytes(),
                    In::Bytes(b) => b,
                };
                (k, bytes)
            })
            .collect())
    }
}

/// A checkpoint: metadata plus staged output batches.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Checkpoint {
    pub(crate) meta: Meta,
    /// Shared with the delivery that follows the write (no copy of the staged output).
    pub(crate) batches: Vec<bytes::Bytes>,
}

pub(crate) fn tp_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

fn err(path: &Path, reason: impl ToString) -> ProcessorError {
    ProcessorError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn file(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

/// Writes `ck` atomically into `dir`.
pub(crate) fn write(dir: &Path, ck: &Checkpoint) -> Result<(), ProcessorError> {
    fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let meta = serde_json::to_vec(&ck.meta).map_err(|e| err(dir, e))?;
    // The staged batches are written as they are (they can be 32 MiB): the checksum is
    // computed over the pieces instead of over one concatenated copy.
    // The length field is 32 bits: refuse metadata it cannot describe rather than write a
    // checkpoint that cannot be read back.
    let meta_len = u32::try_from(meta.len())
        .map_err(|_| {
            err(
                dir,
                format!(
                    "operator state of {} bytes is too large for a checkpoint (at most 4 GiB)",
                    meta.len()
                ),
            )
        })?
        .to_be_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&meta_len);
    crc.update(&meta);
    for b in &ck.batches {
        crc.update(b);
    }
    let mut head = Vec::with_capacity(MAGIC.len() + 8 + meta.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&crc.finalize().to_be_bytes());
    head.extend_from_slice(&meta_len);
    head.extend_from_slice(&meta);
    let tmp = dir.join("checkpoint.tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
    f.write_all(&head)
        .and_then(|_| ck.batches.iter().try_for_each(|b| f.write_all(b)))
        .and_then(|_| f.sync_all())
        .map_err(|e| err(&tmp, e))?;
    let target = file(dir);
    fs::rename(&tmp, &target).map_err(|e| err(&target, e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))
}

/// Reads the checkpoint in `dir`, if there is one. A damaged file is an error (never silently
/// ignored: starting over would duplicate output).
pub(crate) fn read(dir: &Path) -> Result<Option<Checkpoint>, ProcessorError> {
    let path = file(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(&path, e)),
    };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(err(&path, "not an Eddy pipeline checkpoint"));
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let body = &bytes[12..];
    if crc32fast::hash(body) != crc {
        return Err(err(&path, "checksum mismatch: the checkpoint is damaged"));
    }
    let meta_len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let meta_bytes = body
        .get(4..4 + meta_len)
        .ok_or_else(|| err(&path, "truncated metadata"))?;
    let meta: Meta = serde_json::from_slice(meta_bytes).map_err(|e| err(&path, e))?;
    let mut pos = 4 + meta_len;
    let mut batches = Vec::with_capacity(meta.staged.len());
    for s in &meta.staged {
        let b = body
            .get(pos..pos + s.len as usize)
            .ok_or_else(|| err(&path, "truncated staged output"))?;
        batches.push(bytes::Bytes::copy_from_slice(b));
        pos += s.len as usize;
    }
    Ok(Some(Checkpoint { meta, batches }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
        let mut ck = Checkpoint::default();
        ck.meta.id = 7;
        ck.meta.positions.insert(tp_key("in", 0), 42);
        ck.meta.staged.push(StagedMeta {
            topic: "out".into(),
            partition: 1,
            base_sequence: 5,
            records: 2,
            len: 3,
        });
        ck.batches.push(bytes::Bytes::from_static(&[1, 2, 3]));
        // A JSON snapshot is kept as text, a binary one as bytes; both come back as written.
        ck.meta
            .operators
            .insert(0, br#"{"rows":[[1,"a\"b"]]}"#.to_vec());
        ck.meta.operators.insert(3, vec![0xff, 0, 7]);
        write(dir.path(), &ck).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(ck.clone()));
        let meta = serde_json::to_string(&ck.meta).expect("meta");
        assert!(meta.contains(r#""0":"{\"rows\":"#), "{meta}");
        assert!(meta.contains(r#""3":[255,0,7]"#), "{meta}");
        // Checkpoints written before held every snapshot as an array of byte values.
        let old = meta.replace(
            &serde_json::to_string(
                &String::from_utf8(ck.meta.operators[&0].clone()).expect("utf-8"),
            )
            .expect("text"),
            &serde_json::to_string(&ck.meta.operators[&0]).expect("array"),
        );
        assert_ne!(old, meta);
        let back: Meta = serde_json::from_str(&old).expect("old format reads");
        assert_eq!(back, ck.meta);
        let path = dir.path().join("checkpoint");
        let mut bytes = fs::read(&path).expect("bytes");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).expect("write");
        assert!(read(dir.path())
            .expect_err("must fail")
            .to_string()
            .contains("damaged"));
    }
}
