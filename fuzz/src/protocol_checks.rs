//! Checks for the protocol crate: request frames, request bodies of every supported API, and
//! record batches. Uses only `eddy_protocol` (and the crates it re-exports) and `bytes`, so
//! `protocol/tests/fuzz_regressions.rs` can include this file as a module.

use bytes::{Bytes, BytesMut};
use eddy_protocol::apis::SUPPORTED_APIS;
use eddy_protocol::batch::{BatchHeader, Compression};
use eddy_protocol::codec::{decode_request, decode_request_body};
use eddy_protocol::kafka_protocol::messages::{ApiKey, RequestKind};
use eddy_protocol::kafka_protocol::protocol::Encodable;
use eddy_protocol::kafka_protocol::records::RecordBatchDecoder;

/// Encodes `body` at `version` and decodes it again through the broker's decode path; the
/// result must equal `body`.
fn assert_round_trips(api: ApiKey, version: i16, body: &RequestKind) {
    let mut buf = BytesMut::new();
    if let Err(e) = body.encode(&mut buf, version) {
        panic!("{api:?} v{version} decoded but does not encode again: {e:#}\n{body:?}");
    }
    match decode_request_body(api, version, buf.freeze()) {
        Ok(again) => assert_eq!(
            &again, body,
            "{api:?} v{version} changed in an encode/decode round trip"
        ),
        Err(e) => panic!("{api:?} v{version} re-encoded body does not decode: {e}\n{body:?}"),
    }
}

/// Target `decode_request`: any bytes as a request frame (length prefix stripped). Decoding
/// returns Ok or Err; a decoded request encodes back (header and body) to a frame that
/// decodes to the same request.
pub fn decode_request_frame(data: &[u8]) {
    let Ok(request) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    let (api, version) = (request.api, request.version);
    let mut frame = BytesMut::new();
    if let Err(e) = request
        .header
        .encode(&mut frame, api.request_header_version(version))
    {
        panic!("{api:?} v{version} header decoded but does not encode again: {e:#}");
    }
    if let Err(e) = request.body.encode(&mut frame, version) {
        panic!("{api:?} v{version} decoded but does not encode again: {e:#}");
    }
    match decode_request(frame.freeze()) {
        Ok(again) => {
            assert_eq!(again.header, request.header, "{api:?} v{version} header");
            assert_eq!(again.body, request.body, "{api:?} v{version} body");
        }
        Err(e) => panic!("{api:?} v{version} re-encoded frame does not decode: {e}"),
    }
}

/// The API and version that the first two bytes of a `request_bodies` input pick, and the
/// body bytes after them; `None` for inputs shorter than two bytes.
pub fn pick_api(data: &[u8]) -> Option<(ApiKey, i16, &[u8])> {
    let [which, version, body @ ..] = data else {
        return None;
    };
    let api = SUPPORTED_APIS[usize::from(*which) % SUPPORTED_APIS.len()];
    let span = usize::try_from(api.max - api.min).unwrap_or(0) + 1;
    let version = api.min + i16::try_from(usize::from(*version) % span).unwrap_or(0);
    Some((api.key, version, body))
}

/// Target `request_bodies`: byte 0 picks an entry of `SUPPORTED_APIS`, byte 1 a version in
/// its range, the rest is decoded as that request's body exactly as the broker does after
/// the header. Decoding returns Ok or Err; a decoded body survives an encode/decode round
/// trip unchanged.
pub fn request_body(data: &[u8]) {
    let Some((api, version, body)) = pick_api(data) else {
        return;
    };
    if let Ok(decoded) = decode_request_body(api, version, Bytes::copy_from_slice(body)) {
        assert_round_trips(api, version, &decoded);
    }
}

/// Target `record_batch`: any bytes as a record batch, as the produce path and the storage
/// engine see them, then through the decoders that read records (`RecordBatchDecoder`, used
/// by the group coordinator and the client, and `compress::decompress`, used by
/// compaction). Nothing may panic, and the checks must agree with each other. A batch whose
/// CRC does not match is checked a second time with its CRC recomputed, so mutations reach
/// the record decoders instead of stopping at the CRC check.
pub fn record_batch(data: &[u8]) {
    check_batch(data);
    if let Ok(h) = BatchHeader::parse(data) {
        if h.verify_crc().is_err() {
            let mut fixed = h.as_bytes().to_vec();
            fixed[17..21].copy_from_slice(&h.compute_crc().to_be_bytes());
            check_batch(&fixed);
        }
    }
}

fn check_batch(data: &[u8]) {
    let Ok(h) = BatchHeader::parse(data) else {
        return;
    };
    assert!(h.size() <= data.len(), "the view is larger than the input");
    assert_eq!(h.as_bytes(), &data[..h.size()]);
    let produced = h.validate_produced();
    let stored = h.verify_stored();
    if produced.is_ok() {
        assert_eq!(
            stored,
            Ok(()),
            "a valid produced batch must pass verify_stored"
        );
    }
    // What the storage walker and readers compute from every stored header.
    let _ = (h.last_offset(), h.records_payload().len(), h.is_control());

    let mut one = Bytes::copy_from_slice(h.as_bytes());
    if let Ok(set) = RecordBatchDecoder::decode(&mut one) {
        if produced.is_ok() {
            assert_eq!(
                set.records.len(),
                usize::try_from(h.records_count()).unwrap_or(0),
                "decoded record count differs from the header's"
            );
        }
    }
    if let Ok(codec) = h.compression() {
        if codec != Compression::None {
            let _ = eddy_protocol::compress::decompress(codec, h.records_payload());
        }
    }
}
