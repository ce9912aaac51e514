//! Per-batch compaction: learning the latest offset of each key, and filtering one batch.
//!
//! A filtered batch keeps its header as it was (base offset, last offset delta, timestamps,
//! producer id/epoch/base sequence, attributes), as Kafka's cleaner does: offsets never
//! change, and a consumer steps over the gaps using each batch's last offset. Only the record
//! count, the length and the CRC-32C are rewritten. Kept records are copied byte for byte;
//! a compressed batch is decompressed, filtered and compressed again with the same codec.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use eddy_protocol::batch::{BatchHeader, Compression, BATCH_HEADER_LEN, LOG_OVERHEAD};
use eddy_protocol::compress::{compress, decompress};

use super::Counts;
use crate::records::{split_records, RecordRef};

// Header fields a filtered batch rewrites (layout in protocol/src/batch.rs).
const OFF_LENGTH: usize = 8;
const OFF_CRC: usize = 17;
const OFF_RECORDS_COUNT: usize = 57;

/// The latest offset of every key in the cleaned range. Full keys, not digests: a hash
/// collision would silently delete the latest value of a key. Memory grows with the number
/// of distinct keys (and their size) in the range.
#[derive(Debug, Default)]
pub(super) struct KeyMap {
    latest: HashMap<Box<[u8]>, Latest>,
    /// Records with a key that a later record of the same key replaced.
    pub(super) superseded: u64,
    /// Keys of superseded values kept only so a batch survives (see `filter`): their latest
    /// tombstone is kept however old. Filled in offset order, so before that tombstone is met.
    guarded: HashSet<Box<[u8]>>,
}

#[derive(Debug, Clone, Copy)]
struct Latest {
    offset: i64,
    /// If the latest record is a tombstone: its batch's max timestamp (what
    /// `delete.retention.ms` is measured from).
    tombstone_ts: Option<i64>,
}

impl KeyMap {
    fn note(&mut self, key: &[u8], latest: Latest) {
        match self.latest.get_mut(key) {
            Some(l) => {
                *l = latest;
                self.superseded += 1;
            }
            None => {
                self.latest.insert(key.into(), latest);
            }
        }
    }

    fn is_latest(&self, key: &[u8], offset: i64) -> bool {
        self.latest.get(key).is_some_and(|l| l.offset == offset)
    }

    /// Whether cleaning would remove anything at all.
    pub(super) fn anything_to_remove(&self, rules: Rules) -> bool {
        self.superseded > 0
            || self
                .latest
                .values()
                .any(|l| l.tombstone_ts.is_some_and(|ts| ts < rules.tombstone_cutoff))
    }

    /// When the oldest tombstone that stays becomes old enough to remove.
    pub(super) fn recheck_at(&self, rules: Rules) -> Option<i64> {
        self.latest
            .values()
            .filter_map(|l| l.tombstone_ts)
            .filter(|ts| *ts >= rules.tombstone_cutoff)
            .map(|ts| {
                ts.saturating_add(rules.delete_retention_ms)
                    .saturating_add(1)
            })
            .min()
    }
}

/// What compaction can read of a batch.
enum Content<'a> {
    /// Kept exactly as it is: control batches (transaction markers), batches without records,
    /// and batches whose records cannot be read (`Some(reason)`).
    Opaque(Option<String>),
    /// The (decompressed) records.
    Records {
        codec: Compression,
        payload: Cow<'a, [u8]>,
    },
}

fn content<'a>(h: &BatchHeader<'a>) -> Content<'a> {
    if h.is_control() || h.records_count() <= 0 {
        return Content::Opaque(None);
    }
    let codec = match h.compression() {
        Ok(c) => c,
        Err(e) => return Content::Opaque(Some(e.to_string())),
    };
    let payload = match codec {
        Compression::None => Cow::Borrowed(h.records_payload()),
        _ => match decompress(codec, h.records_payload()) {
            Ok(p) => Cow::Owned(p),
            Err(e) => return Content::Opaque(Some(e.to_string())),
        },
    };
    Content::Records { codec, payload }
}

/// Calls `f` with the records of a batch; `Err(reason)` if the batch is opaque because it
/// cannot be read, `Ok(None)` if it is opaque by nature (control, empty).
fn with_records<R>(
    h: &BatchHeader<'_>,
    f: impl FnOnce(Compression, &[RecordRef<'_>]) -> R,
) -> Result<Option<R>, String> {
    match content(h) {
        Content::Opaque(None) => Ok(None),
        Content::Opaque(Some(reason)) => Err(reason),
        Content::Records { codec, payload } => {
            let count = usize::try_from(h.records_count()).unwrap_or(0);
            match split_records(&payload, count, h.last_offset_delta()) {
                Some(records) => Ok(Some(f(codec, &records))),
                None => Err("its records are not well framed".to_owned()),
            }
        }
    }
}

/// Notes every keyed record of a batch in the map (first pass). Returns why the batch could
/// not be read, if it could not.
pub(super) fn learn(h: &BatchHeader<'_>, map: &mut KeyMap) -> Option<String> {
    let base = h.base_offset();
    let ts = h.max_timestamp();
    with_records(h, |_, records| {
        for r in records {
            if let Some(key) = r.key {
                let latest = Latest {
                    offset: base + r.offset_delta,
                    tombstone_ts: r.value_is_null.then_some(ts),
                };
                map.note(key, latest);
            }
        }
    })
    .err()
}

/// What to do with one batch (second pass).
#[derive(Debug)]
pub(super) enum Outcome {
    /// Write it as it is.
    Unchanged,
    /// Every record went: write nothing.
    Dropped,
    /// Write this smaller batch instead.
    Rewritten(Vec<u8>),
}

/// Settings of the second pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    pub(super) tombstone_cutoff: i64,
    pub(super) delete_retention_ms: i64,
}

/// Filters one batch against the map. `must_survive`: the batch ends an output segment, whose
/// last offset must stay that of the input (see `run.rs`), so if every record would go, one is
/// kept anyway (a later compaction, when the batch no longer ends a group, removes it).
pub(super) fn filter(
    h: &BatchHeader<'_>,
    map: &mut KeyMap,
    rules: Rules,
    must_survive: bool,
    counts: &mut Counts,
) -> Result<Outcome, String> {
    let decided = with_records(h, |codec, records| {
        let (latest, mut keep) = decide(h, records, map, rules);
        if must_survive && !keep.contains(&true) {
            if let Some(i) = survivor(records, &latest) {
                keep[i] = true;
                let r = &records[i];
                if let (Some(key), false, false) = (r.key, r.value_is_null, latest[i]) {
                    // A stale value stays: its key's tombstone must stay too, or the value
                    // would come back to life once the tombstone expires.
                    map.guarded.insert(key.into());
                }
            }
        }
        let kept = keep.iter().filter(|k| **k).count();
        counts.records_kept += kept as u64;
        counts.records_removed += (records.len() - kept) as u64;
        counts.tombstones_removed += records
            .iter()
            .zip(keep.iter().zip(&latest))
            .filter(|(r, (&k, &l))| !k && l && r.value_is_null)
            .count() as u64;
        if kept == records.len() {
            return Ok(Outcome::Unchanged);
        }
        if kept == 0 {
            return Ok(Outcome::Dropped);
        }
        let mut plain = Vec::new();
        for (r, _) in records.iter().zip(&keep).filter(|(_, k)| **k) {
            plain.extend_from_slice(r.framed);
        }
        let payload = compress(codec, &plain).map_err(|e| e.to_string())?;
        rebuild(h.as_bytes(), &payload, kept).map(Outcome::Rewritten)
    });
    match decided {
        Ok(Some(outcome)) => outcome,
        Ok(None) => {
            counts.records_kept += u64::try_from(h.records_count()).unwrap_or(0);
            Ok(Outcome::Unchanged)
        }
        Err(_) => {
            counts.batches_unreadable += 1;
            counts.records_kept += u64::try_from(h.records_count()).unwrap_or(0);
            Ok(Outcome::Unchanged)
        }
    }
}

/// Whether each record is its key's latest, and whether it stays (before any forced keep).
fn decide(
    h: &BatchHeader<'_>,
    records: &[RecordRef<'_>],
    map: &KeyMap,
    rules: Rules,
) -> (Vec<bool>, Vec<bool>) {
    let expired = h.max_timestamp() < rules.tombstone_cutoff;
    let base = h.base_offset();
    let latest: Vec<bool> = records
        .iter()
        .map(|r| {
            r.key
                .is_some_and(|k| map.is_latest(k, base + r.offset_delta))
        })
        .collect();
    let keep = records
        .iter()
        .zip(&latest)
        .map(|(r, &latest)| match r.key {
            None => true, // null keys: compaction cannot judge them (the broker rejects them)
            Some(_) if !latest => false,
            Some(key) => !(r.value_is_null && expired) || map.guarded.contains(key),
        })
        .collect();
    (latest, keep)
}

/// Whether at least one record of the batch stays without forcing (opaque batches stay
/// whole). Used to choose where output segments end.
pub(super) fn survives(h: &BatchHeader<'_>, map: &KeyMap, rules: Rules) -> bool {
    match with_records(h, |_, records| {
        decide(h, records, map, rules).1.contains(&true)
    }) {
        Ok(Some(survives)) => survives,
        Ok(None) | Err(_) => true,
    }
}

/// The record to keep in a batch that must survive although every record would go, least
/// harmful first: an expired tombstone that is its key's latest record (the key stays
/// deleted), else a superseded tombstone, else the last record (a superseded value: its key
/// is then guarded, see `KeyMap::guarded`).
fn survivor(records: &[RecordRef<'_>], latest: &[bool]) -> Option<usize> {
    latest
        .iter()
        .rposition(|l| *l)
        .or_else(|| records.iter().rposition(|r| r.value_is_null))
        .or_else(|| records.len().checked_sub(1))
}

/// The original header with a new payload: length, record count and CRC-32C rewritten.
fn rebuild(original: &[u8], payload: &[u8], count: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + payload.len());
    out.extend_from_slice(&original[..BATCH_HEADER_LEN]);
    out.extend_from_slice(payload);
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| "a filtered batch would exceed 2 GiB".to_owned())?;
    let count = i32::try_from(count).map_err(|_| "too many records".to_owned())?;
    out[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    out[OFF_RECORDS_COUNT..OFF_RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = BatchHeader::parse(&out)
        .map_err(|e| e.to_string())?
        .compute_crc();
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}
