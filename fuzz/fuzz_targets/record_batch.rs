#![no_main]
//! Any bytes as a record batch: produce validation, stored-batch verification and the record
//! decoders must never panic and must agree. See `eddy_fuzz::protocol_checks::record_batch`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::protocol_checks::record_batch(data));
