#![no_main]
//! Any bytes as a request frame: decoding returns Ok or Err (never panics or aborts), and a
//! decoded request survives an encode/decode round trip. See `eddy_fuzz::protocol_checks`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::protocol_checks::decode_request_frame(data));
