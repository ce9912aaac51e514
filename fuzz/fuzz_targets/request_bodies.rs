#![no_main]
//! Byte 0 picks a supported API, byte 1 a version it serves, the rest is decoded as that
//! request's body the way the broker does; decoded bodies must round-trip. See
//! `eddy_fuzz::protocol_checks::request_body`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::protocol_checks::request_body(data));
