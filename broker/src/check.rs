//! `eddy check --data-dir DIR`: a full, read-only verification of a stopped broker's data
//! directory. Unlike start-up recovery (which trusts older segments and repairs the tail),
//! this reads every byte: every batch's framing, magic and CRC-32C, offsets increasing (and
//! contiguous unless the topic is compacted), every offset- and time-index entry against the
//! batches it points at, and the topic metadata. It never changes a file.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use eddy_protocol::batch::{batch_size_at, BatchHeader};

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub partitions: usize,
    pub segments: usize,
    pub batches: u64,
    pub bytes: u64,
    /// One sentence per problem, naming the file and position.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "DAMAGE: {p}")?;
        }
        write!(
            f,
            "checked {} partition(s), {} segment(s), {} batch(es), {} bytes: {}",
            self.partitions,
            self.segments,
            self.batches,
            self.bytes,
            if self.is_clean() {
                "no damage".to_string()
            } else {
                format!("{} problem(s)", self.problems.len())
            }
        )
    }
}

#[derive(serde::Deserialize)]
struct Meta {
    name: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// Verifies every partition of every topic in `data_dir`.
pub fn check_data_dir(data_dir: &Path) -> std::io::Result<CheckReport> {
    let mut report = CheckReport::default();
    let meta_dir = data_dir.join("meta").join("topics");
    let mut metas = Vec::new();
    for entry in fs::read_dir(&meta_dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Meta>(&b).map_err(|e| e.to_string()))
        {
            Ok(m) => metas.push(m),
            Err(e) => report.problems.push(format!(
                "{}: unreadable topic metadata ({e})",
                path.display()
            )),
        }
    }
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    for m in metas {
        let compacted = crate::topics::is_internal(&m.name)
            || m.configs
                .get("cleanup.policy")
                .is_some_and(|p| p.contains("compact"));
        for p in 0..m.partitions {
            let dir = data_dir.join(format!("{}-{p}", m.name));
            report.partitions += 1;
            if !dir.is_dir() {
                report
                    .problems
                    .push(format!("{}: partition directory is missing", dir.display()));
                continue;
            }
            check_partition(&dir, compacted, &mut report);
        }
    }
    Ok(report)
}

fn segment_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        match stem.parse::<i64>() {
            Ok(base) if stem.len() == 20 => out.push((base, path)),
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}

fn check_partition(dir: &Path, compacted: bool, report: &mut CheckReport) {
    let segments = match segment_files(dir) {
        Ok(s) => s,
        Err(e) => {
            report
                .problems
                .push(format!("{}: cannot list ({e})", dir.display()));
            return;
        }
    };
    let mut prev_last: Option<i64> = None;
    for (base, log) in segments {
        report.segments += 1;
        let data = match fs::read(&log) {
            Ok(d) => d,
            Err(e) => {
                report
                    .problems
                    .push(format!("{}: cannot read ({e})", log.display()));
                continue;
            }
        };
        report.bytes += data.len() as u64;
        // (position, base offset) of every batch, for the index checks.
        let mut starts: BTreeMap<u32, i64> = BTreeMap::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let rest = &data[pos..];
            let problem = match batch_size_at(rest) {
                None => Some("a batch header is cut short".to_string()),
                Some(size) if size > rest.len() => Some(format!(
                    "a batch of {size} bytes runs past the end of the file"
                )),
                Some(size) => {
                    match BatchHeader::parse(&rest[..size]) {
                        Err(e) => Some(e.to_string()),
                        Ok(h) => match h.verify_crc() {
                            Err(e) => Some(e.to_string()),
                            Ok(()) => {
                                let first = h.base_offset();
                                if first < base {
                                    Some(format!(
                                        "batch offset {first} is below the segment base {base}"
                                    ))
                                } else if let Some(last) = prev_last.filter(|l| first <= *l) {
                                    Some(format!("batch offset {first} does not follow {last}"))
                                } else if let Some(last) =
                                    prev_last.filter(|l| !compacted && first != *l + 1)
                                {
                                    Some(format!("offsets jump from {last} to {first} in a non-compacted topic"))
                                } else {
                                    starts.insert(pos as u32, first);
                                    prev_last = Some(h.last_offset());
                                    report.batches += 1;
                                    pos += size;
                                    None
                                }
                            }
                        },
                    }
                }
            };
            if let Some(p) = problem {
                report
                    .problems
                    .push(format!("{} at byte {pos}: {p}", log.display()));
                break;
            }
        }
        check_indexes(&log, base, &starts, report);
    }
}

fn check_indexes(log: &Path, base: i64, starts: &BTreeMap<u32, i64>, report: &mut CheckReport) {
    let index = log.with_extension("index");
    let timeindex = log.with_extension("timeindex");
    let Ok(idx) = fs::read(&index) else {
        report
            .problems
            .push(format!("{}: missing or unreadable", index.display()));
        return;
    };
    if idx.len() % 8 != 0 {
        report.problems.push(format!(
            "{}: {} bytes is not a whole number of 8-byte entries",
            index.display(),
            idx.len()
        ));
        return;
    }
    let mut rels = Vec::new();
    let mut last: Option<(u32, u32)> = None;
    for (i, e) in idx.chunks_exact(8).enumerate() {
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let position = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        if let Some((lr, lp)) = last {
            if rel <= lr || position <= lp {
                report.problems.push(format!(
                    "{}: entry {i} ({rel}, {position}) does not increase",
                    index.display()
                ));
                return;
            }
        }
        match starts.get(&position) {
            Some(off) if *off == base + i64::from(rel) => {}
            Some(off) => {
                report.problems.push(format!(
                    "{}: entry {i} maps offset {} to byte {position}, where the batch starts at offset {off}",
                    index.display(),
                    base + i64::from(rel)
                ));
                return;
            }
            None => {
                report.problems.push(format!(
                    "{}: entry {i} points at byte {position}, which is not the start of a batch",
                    index.display()
                ));
                return;
            }
        }
        rels.push(rel);
        last = Some((rel, position));
    }
    let Ok(tidx) = fs::read(&timeindex) else {
        report
            .problems
            .push(format!("{}: missing or unreadable", timeindex.display()));
        return;
    };
    if tidx.len() % 12 != 0 || tidx.len() / 12 != rels.len() {
        report.problems.push(format!(
            "{}: {} bytes, expected {} 12-byte entries (one per offset-index entry)",
            timeindex.display(),
            tidx.len(),
            rels.len()
        ));
        return;
    }
    let mut prev_ts = i64::MIN;
    for (i, (e, rel)) in tidx.chunks_exact(12).zip(&rels).enumerate() {
        let mut t = [0u8; 8];
        t.copy_from_slice(&e[..8]);
        let ts = i64::from_be_bytes(t);
        let r = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        if r != *rel || ts < prev_ts {
            report.problems.push(format!(
                "{}: entry {i} ({ts}, {r}) disagrees with the offset index or goes back in time",
                timeindex.display()
            ));
            return;
        }
        prev_ts = ts;
    }
}
