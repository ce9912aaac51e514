//! Compressing and decompressing the records payload of a v2 record batch (everything after
//! the 61-byte header) with the codecs Kafka uses: gzip, snappy, lz4 and zstd.
//!
//! Built on `kafka_protocol::compression`, the same code its `RecordBatchDecoder` uses, so a
//! payload we can decompress is one any client of that crate can too. Snappy is written in
//! the xerial framing the Java client uses and read in both the xerial framing and plain
//! ("raw") snappy, as the Java client's reader does.
//!
//! Decompression is not bounded: a small payload may expand a lot. Callers decompress only
//! batches already stored (compaction) and hold one batch at a time.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use thiserror::Error;

use crate::batch::Compression;

/// Why a payload could not be compressed or decompressed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CompressError {
    /// The bytes are not a valid stream of the batch's codec.
    #[error("the {codec} payload cannot be decompressed: {reason}")]
    Decompress {
        /// Codec name (gzip, snappy, lz4, zstd).
        codec: &'static str,
        /// What the codec reported.
        reason: String,
    },
    /// The codec failed while compressing (for example, out of memory).
    #[error("records cannot be compressed with {codec}: {reason}")]
    Compress {
        /// Codec name (gzip, snappy, lz4, zstd).
        codec: &'static str,
        /// What the codec reported.
        reason: String,
    },
}

/// The name Kafka uses for a codec (`compression.type`).
pub fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Decompresses a batch's records payload. `Compression::None` returns a copy.
pub fn decompress(codec: Compression, payload: &[u8]) -> Result<Vec<u8>, CompressError> {
    let mut input = payload;
    let take = |buf: &mut Bytes| Ok(Vec::from(std::mem::take(buf)));
    let result = match codec {
        Compression::None => return Ok(payload.to_vec()),
        Compression::Gzip => Gzip::decompress(&mut input, take),
        Compression::Snappy => Snappy::decompress(&mut input, take),
        Compression::Lz4 => Lz4::decompress(&mut input, take),
        Compression::Zstd => Zstd::decompress(&mut input, take),
    };
    result.map_err(|e| CompressError::Decompress {
        codec: codec_name(codec),
        reason: format!("{e:#}"),
    })
}

/// Compresses concatenated records into a batch payload. `Compression::None` returns a copy.
pub fn compress(codec: Compression, records: &[u8]) -> Result<Vec<u8>, CompressError> {
    let mut out = Vec::with_capacity(records.len() / 2 + 64);
    let fill = |buf: &mut BytesMut| {
        buf.extend_from_slice(records);
        Ok(())
    };
    let result = match codec {
        Compression::None => return Ok(records.to_vec()),
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
    };
    result.map_err(|e| CompressError::Compress {
        codec: codec_name(codec),
        reason: format!("{e:#}"),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, BatchHeader, BATCH_HEADER_LEN};
    use kafka_protocol::records::{
        Compression as KCompression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    };

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn records() -> Vec<u8> {
        let mut b = BatchBuilder::default();
        for i in 0..50u8 {
            b.push(1_000 + i64::from(i), Some(&[i % 7]), Some(&[i; 40]), &[]);
        }
        b.finish()[BATCH_HEADER_LEN..].to_vec()
    }

    #[test]
    fn every_codec_round_trips() {
        let plain = records();
        for codec in CODECS {
            let packed = compress(codec, &plain).expect("compress");
            assert_ne!(packed, plain, "{}", codec_name(codec));
            assert_eq!(decompress(codec, &packed).expect("decompress"), plain);
        }
        assert_eq!(compress(Compression::None, &plain).expect("none"), plain);
        assert_eq!(decompress(Compression::None, &plain).expect("none"), plain);
    }

    #[test]
    fn reads_payloads_written_by_kafka_protocols_encoder() {
        let mut b = BatchBuilder::default();
        b.push(5, Some(b"k"), Some(b"value"), &[(b"h", Some(b"x"))]);
        b.push(6, None, None, &[]);
        let set = RecordBatchDecoder::decode(&mut bytes::Bytes::from(b.finish())).expect("decode");
        let encode = |compression: KCompression| {
            let mut out = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut out, &set.records, &options).expect("encode");
            out
        };
        let plain = encode(KCompression::None);
        let plain = &plain[BATCH_HEADER_LEN..];
        for (codec, k) in CODECS.into_iter().zip([
            KCompression::Gzip,
            KCompression::Snappy,
            KCompression::Lz4,
            KCompression::Zstd,
        ]) {
            let encoded = encode(k);
            let h = BatchHeader::parse(&encoded).expect("parse");
            assert_eq!(h.compression(), Ok(codec));
            let got = decompress(codec, h.records_payload()).expect("decompress");
            assert_eq!(got, plain, "{}", codec_name(codec));
        }
    }

    #[test]
    fn snappy_accepts_xerial_framing_and_raw_blocks() {
        // The same records payload in the Java client's xerial framing and as one raw block.
        let xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
        let raw = b"\r0\x18\0\0\0\x01\x0csdfdsf\0";
        let a = decompress(Compression::Snappy, xerial).expect("xerial");
        let b = decompress(Compression::Snappy, raw).expect("raw");
        assert_eq!(a, b);
        assert!(a.ends_with(b"sdfdsf\x00"));
        assert!(compress(Compression::Snappy, &a)
            .expect("compress")
            .starts_with(b"\x82SNAPPY\x00"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in CODECS {
            let err = decompress(codec, b"definitely not compressed").expect_err("garbage");
            assert!(err.to_string().contains(codec_name(codec)), "{err}");
        }
    }
}
