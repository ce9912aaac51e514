//! Frames in, typed requests out; typed responses in, frames out.
//!
//! Order of checks for a request frame (the 4-byte length prefix already stripped and
//! bounded by [`check_frame_len`]): header fields present → API key known and served →
//! version served → header decode → body decode at that version → body fully consumed.
//! Anything else is a [`DecodeError`], which the connection answers by closing (or, for
//! ApiVersions at an unknown version, with the v0 fallback reply).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use crate::apis;

/// Kafka's default `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;
/// Smallest request header: api key, version, correlation id, client id length.
const MIN_HEADER: usize = 10;
/// Error code for UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// Why a frame could not be turned into a request.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("frame length {len} is outside 1..={max} bytes (socket.request.max.bytes)")]
    BadFrameLength { len: i64, max: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown or unserved API key {api_key} (correlation id {correlation_id})")]
    UnknownApi { api_key: i16, correlation_id: i32 },
    #[error("{api:?} v{version} is not supported (supported: v{min}..=v{max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
        correlation_id: i32,
    },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{api:?} v{version} request has {extra} unread trailing bytes")]
    TrailingBytes {
        api: ApiKey,
        version: i16,
        extra: usize,
    },
}

/// Validates a 4-byte length prefix before anything is allocated for the frame.
pub fn check_frame_len(len: i32, max: usize) -> Result<usize, DecodeError> {
    if len <= 0 || len as usize > max {
        return Err(DecodeError::BadFrameLength {
            len: i64::from(len),
            max,
        });
    }
    Ok(len as usize)
}

/// A decoded request: its header, API, version and typed body.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api: ApiKey,
    pub version: i16,
    pub body: RequestKind,
}

/// Peeks api key, version and correlation id without decoding anything else.
pub fn peek_header(frame: &[u8]) -> Result<(i16, i16, i32), DecodeError> {
    if frame.len() < MIN_HEADER {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let corr = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Ok((key, version, corr))
}

fn decode_inner(api: ApiKey, version: i16, mut frame: Bytes) -> Result<Request, DecodeError> {
    let malformed = |reason: String| DecodeError::Malformed {
        api,
        version,
        reason,
    };
    let header_version = api.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| malformed(format!("header: {e}")))?;
    let body = decode_body_inner(api, version, &mut frame)?;
    Ok(Request {
        header,
        api,
        version,
        body,
    })
}

/// Body decode at `version`, then the trailing-bytes check: the part of a request frame
/// after its header.
fn decode_body_inner(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<RequestKind, DecodeError> {
    let decoded = RequestKind::decode(api, body, version).map_err(|e| DecodeError::Malformed {
        api,
        version,
        reason: format!("body: {e}"),
    })?;
    if body.has_remaining() {
        return Err(DecodeError::TrailingBytes {
            api,
            version,
            extra: body.remaining(),
        });
    }
    Ok(decoded)
}

/// Runs a decode, turning a panic inside the codec crate into [`DecodeError::Malformed`].
fn guarded<T>(
    api: ApiKey,
    version: i16,
    decode: impl FnOnce() -> Result<T, DecodeError> + std::panic::UnwindSafe,
) -> Result<T, DecodeError> {
    std::panic::catch_unwind(decode).unwrap_or_else(|_| {
        Err(DecodeError::Malformed {
            api,
            version,
            reason: "decoder rejected the body".to_string(),
        })
    })
}

/// Decodes a request body (the bytes after the request header) as `api` at `version`, exactly
/// as [`decode_request`] does once it has read the header: the body must be consumed whole,
/// and a panic in the codec crate becomes [`DecodeError::Malformed`]. Does not consult
/// [`apis::SUPPORTED_APIS`]; check the version first. Used by the fuzz targets.
pub fn decode_request_body(
    api: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<RequestKind, DecodeError> {
    guarded(api, version, move || {
        decode_body_inner(api, version, &mut body)
    })
}

/// Decodes one request frame (without its length prefix). Never panics: a panic inside the
/// codec crate on hostile input is caught and reported as a malformed request.
pub fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    let (raw_key, version, correlation_id) = peek_header(&frame)?;
    let api = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApi {
        api_key: raw_key,
        correlation_id,
    })?;
    let Some(range) = apis::supported(api) else {
        return Err(DecodeError::UnknownApi {
            api_key: raw_key,
            correlation_id,
        });
    };
    if version < range.min || version > range.max {
        return Err(DecodeError::UnsupportedVersion {
            api,
            version,
            min: range.min,
            max: range.max,
            correlation_id,
        });
    }
    guarded(api, version, move || decode_inner(api, version, frame))
}

/// Why a response could not be encoded (a broker bug, never a client's fault).
#[derive(Debug, Error)]
#[error("cannot encode {api:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a response with its length prefix and the header version the API needs.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let err = |e: String| EncodeError {
        api,
        version,
        reason: e,
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length placeholder
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| err(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| err(e.to_string()))?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// The full ApiVersions body listing [`apis::SUPPORTED_APIS`].
pub fn api_versions_body(error_code: i16) -> ApiVersionsResponse {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            apis::SUPPORTED_APIS
                .iter()
                .map(|a| {
                    ApiVersion::default()
                        .with_api_key(a.key as i16)
                        .with_min_version(a.min)
                        .with_max_version(a.max)
                })
                .collect(),
        )
}

/// The reply to an ApiVersions request at a version we don't serve: per KIP-511 a v0
/// response with UNSUPPORTED_VERSION and our ranges, so the client can retry at one we do.
pub fn api_versions_fallback(correlation_id: i32) -> Result<BytesMut, EncodeError> {
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(api_versions_body(UNSUPPORTED_VERSION)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame_of<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut b = BytesMut::new();
        header
            .encode(&mut b, api.request_header_version(version))
            .expect("header");
        body.encode(&mut b, version).expect("body");
        b.freeze()
    }

    #[test]
    fn decodes_api_versions_v3() {
        let f = frame_of(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let r = decode_request(f).expect("decode");
        assert_eq!(r.api, ApiKey::ApiVersions);
        assert_eq!(r.header.correlation_id, 7);
    }

    #[test]
    fn rejects_trailing_bytes() {
        let f = frame_of(ApiKey::Metadata, 1, &MetadataRequest::default());
        let mut b = BytesMut::from(&f[..]);
        b.put_u8(0);
        assert!(matches!(
            decode_request(b.freeze()),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn rejects_unsupported_version_and_unknown_key() {
        let f = frame_of(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut b = BytesMut::from(&f[..]);
        b[2..4].copy_from_slice(&9i16.to_be_bytes());
        assert!(matches!(
            decode_request(b.clone().freeze()),
            Err(DecodeError::UnsupportedVersion { version: 9, .. })
        ));
        b[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(
            decode_request(b.freeze()),
            Err(DecodeError::UnknownApi { api_key: 999, .. })
        ));
    }

    #[test]
    fn frame_len_bounds() {
        assert!(check_frame_len(-1, 100).is_err());
        assert!(check_frame_len(0, 100).is_err());
        assert!(check_frame_len(101, 100).is_err());
        assert_eq!(check_frame_len(100, 100).expect("ok"), 100);
    }

    #[test]
    fn fallback_is_v0_with_error() {
        let b = api_versions_fallback(5).expect("encode");
        let mut body = Bytes::copy_from_slice(&b[8..]);
        assert_eq!(&b[4..8], &5i32.to_be_bytes());
        let r = ApiVersionsResponse::decode(&mut body, 0).expect("decode");
        assert_eq!(r.error_code, UNSUPPORTED_VERSION);
        assert!(!r.api_keys.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_request(Bytes::from(bytes));
        }
    }
}
