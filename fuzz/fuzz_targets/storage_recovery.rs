#![no_main]
//! Any bytes laid out as a partition directory (segment, indexes, checkpoint) and opened on
//! the in-memory file system: recovery returns Ok or Err, and a recovered log reads, appends
//! and reopens correctly. See `eddy_fuzz::storage_checks` for the input layout.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::storage_checks::storage_recovery(data));
