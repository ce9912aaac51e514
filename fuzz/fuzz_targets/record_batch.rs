#![no_main]
//! Any bytes as a produced record batch: validation must never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = eddy_protocol::batch::BatchHeader::parse(data) {
        let _ = h.validate_produced();
    }
});
