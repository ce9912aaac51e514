#![no_main]
//! Any bytes as a request frame: decoding must return Ok or Err, never panic or abort.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = eddy_protocol::codec::decode_request(bytes::Bytes::copy_from_slice(data));
});
