//! Replays every input saved under `fuzz/regressions/{decode_request,request_bodies,
//! record_batch}` (crashes the fuzz targets once found, minimized, plus hand-made seeds)
//! through the same checks the fuzz targets run, so CI keeps them fixed without a fuzzer.

use std::path::{Path, PathBuf};

#[allow(unreachable_pub)]
#[path = "../../fuzz/src/protocol_checks.rs"]
mod checks;
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/replay.rs"]
mod replay;

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions")
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = regressions().join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn decode_request_inputs() {
    replay::replay(
        &regressions(),
        "decode_request",
        checks::decode_request_frame,
    );
}

#[test]
fn request_body_inputs() {
    replay::replay(&regressions(), "request_bodies", checks::request_body);
}

#[test]
fn record_batch_inputs() {
    replay::replay(&regressions(), "record_batch", checks::record_batch);
}

/// The seeds mean what their names say, so the replays above exercise the success paths too.
#[test]
fn seeds_are_what_they_claim() {
    use eddy_protocol::batch::{BatchHeader, Compression};
    use eddy_protocol::codec::{decode_request, decode_request_body};
    use eddy_protocol::kafka_protocol::messages::ApiKey;

    let request = decode_request(seed("decode_request", "seed-produce-v3").into()).expect("frame");
    assert_eq!(request.version, 3);
    let truncated = seed("decode_request", "seed-truncated-produce-v3");
    assert!(decode_request(truncated.into()).is_err());

    // The first two bytes index `SUPPORTED_APIS`: reordering the table changes what a saved
    // input means, and this notices.
    for (name, key, v) in [
        ("seed-produce-v3", ApiKey::Produce, 3),
        ("seed-metadata-v1", ApiKey::Metadata, 1),
        ("seed-api-versions-v3", ApiKey::ApiVersions, 3),
        ("crash-tag-above-i32-max", ApiKey::DescribeCluster, 0),
    ] {
        let input = seed("request_bodies", name);
        let (api, version, body) = checks::pick_api(&input).expect("two selector bytes");
        assert_eq!((api, version), (key, v), "{name}");
        if name.starts_with("seed-") {
            decode_request_body(api, version, body.to_vec().into())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    let batch = seed("record_batch", "seed-valid-batch");
    BatchHeader::parse(&batch)
        .and_then(|h| h.validate_produced())
        .expect("valid batch");
    let gzip = seed("record_batch", "seed-gzip-batch");
    let h = BatchHeader::parse(&gzip).expect("parse");
    h.validate_produced().expect("valid gzip batch");
    assert_eq!(h.compression(), Ok(Compression::Gzip));
}
