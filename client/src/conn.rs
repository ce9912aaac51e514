//! One TCP connection to a broker: requests are pipelined, responses matched to requests by
//! correlation id. API versions are negotiated once, at connect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::ClientError;

/// Responses larger than this are refused (a broker answering garbage must not make us
/// allocate gigabytes).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

type Waiter = oneshot::Sender<Result<Bytes, ClientError>>;

/// A pipelined connection. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    client_id: StrBytes,
    next_correlation: AtomicI32,
    pending: Arc<Mutex<HashMap<i32, (i16, Waiter)>>>,
    out: mpsc::Sender<BytesMut>,
    /// Broker's version range per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and negotiates API versions.
    pub async fn connect(addr: &str, client_id: &str) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let pending: Arc<Mutex<HashMap<i32, (i16, Waiter)>>> = Arc::default();
        let (out, mut out_rx) = mpsc::channel::<BytesMut>(256);
        let a = addr.to_string();
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if let Err(e) = wr.write_all(&frame).await {
                    tracing::debug!(addr = %a, error = %e, "write failed");
                    break;
                }
            }
        });
        let p = pending.clone();
        let a = addr.to_string();
        tokio::spawn(async move {
            let reason = loop {
                let mut len = [0u8; 4];
                if let Err(e) = rd.read_exact(&mut len).await {
                    break e.to_string();
                }
                let n = i32::from_be_bytes(len);
                if n < 4 || n as usize > MAX_RESPONSE {
                    break format!("bad response length {n}");
                }
                let mut buf = vec![0u8; n as usize];
                if let Err(e) = rd.read_exact(&mut buf).await {
                    break e.to_string();
                }
                let mut body = Bytes::from(buf);
                let corr = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let waiter = p.lock().ok().and_then(|mut m| m.remove(&corr));
                let Some((header_version, w)) = waiter else {
                    break format!("response with unknown correlation id {corr}");
                };
                let r = ResponseHeader::decode(&mut body, header_version)
                    .map(|_| body)
                    .map_err(|e| ClientError::Decode {
                        api: "response header".into(),
                        reason: e.to_string(),
                    });
                let _ = w.send(r);
            };
            let waiters: Vec<(i16, Waiter)> = p
                .lock()
                .map(|mut m| m.drain().map(|(_, v)| v).collect())
                .unwrap_or_default();
            for (_, w) in waiters {
                let _ = w.send(Err(ClientError::Disconnected {
                    addr: a.clone(),
                    reason: reason.clone(),
                }));
            }
        });
        let mut conn = Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation: AtomicI32::new(1),
            pending,
            out,
            versions: HashMap::new(),
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("eddy-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse = self.send_at(&req, 3).await?;
        if resp.error_code != 0 {
            // KIP-511: the broker answered v0 with its ranges; retry at v0.
            resp = self.send_at(&ApiVersionsRequest::default(), 0).await?;
        }
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The highest version of `R` both sides speak.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        let ours = R::VERSIONS;
        let api = ApiKey::try_from(R::KEY)
            .map(|k| format!("{k:?}"))
            .unwrap_or_default();
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or(ClientError::Unsupported {
                api: api.clone(),
                min: ours.min,
            })?;
        let v = max.min(ours.max);
        if v < min.max(ours.min) {
            return Err(ClientError::Unsupported { api, min: ours.min });
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response, ClientError> {
        let v = self.version_for::<R>()?;
        self.send_at(req, v).await
    }

    /// Sends `req` at version `v` and waits for its response.
    pub async fn send_at<R: Request>(&self, req: &R, v: i16) -> Result<R::Response, ClientError> {
        self.enqueue_at(req, v).await?.wait().await
    }

    /// Queues `req` (requests leave in the order they are queued) and returns a handle to
    /// await its response later, so callers can pipeline.
    pub async fn enqueue<R: Request>(&self, req: &R) -> Result<InFlight<R::Response>, ClientError> {
        let v = self.version_for::<R>()?;
        self.enqueue_at(req, v).await
    }

    async fn enqueue_at<R: Request>(
        &self,
        req: &R,
        v: i16,
    ) -> Result<InFlight<R::Response>, ClientError> {
        let rx = self
            .submit(req, v, true)
            .await?
            .ok_or(ClientError::Closed)?;
        Ok(InFlight {
            rx,
            version: v,
            api: ApiKey::try_from(R::KEY)
                .map(|k| format!("{k:?}"))
                .unwrap_or_default(),
            addr: self.addr.clone(),
            _marker: std::marker::PhantomData,
        })
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&self, req: &R) -> Result<(), ClientError> {
        let v = self.version_for::<R>()?;
        self.submit(req, v, false).await.map(|_| ())
    }

    async fn submit<R: Request>(
        &self,
        req: &R,
        v: i16,
        expect_response: bool,
    ) -> Result<Option<oneshot::Receiver<Result<Bytes, ClientError>>>, ClientError> {
        let api = ApiKey::try_from(R::KEY)
            .map(|k| format!("{k:?}"))
            .unwrap_or_default();
        let corr = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(v)
            .with_correlation_id(corr)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i32(0);
        let enc = |reason: String| ClientError::Encode {
            api: api.clone(),
            reason,
        };
        header
            .encode(&mut buf, R::header_version(v))
            .map_err(|e| enc(e.to_string()))?;
        req.encode(&mut buf, v).map_err(|e| enc(e.to_string()))?;
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        let rx = if expect_response {
            let (tx, rx) = oneshot::channel();
            let hv = <R::Response as HeaderVersion>::header_version(v);
            if let Ok(mut m) = self.pending.lock() {
                m.insert(corr, (hv, tx));
            }
            Some(rx)
        } else {
            None
        };
        self.out
            .send(buf)
            .await
            .map_err(|_| ClientError::Disconnected {
                addr: self.addr.clone(),
                reason: "connection closed".into(),
            })?;
        Ok(rx)
    }
}

/// A request on the wire whose response has not been read yet.
#[derive(Debug)]
pub struct InFlight<T> {
    rx: oneshot::Receiver<Result<Bytes, ClientError>>,
    version: i16,
    api: String,
    addr: String,
    _marker: std::marker::PhantomData<fn() -> T>,
}

impl<T: Decodable> InFlight<T> {
    pub async fn wait(self) -> Result<T, ClientError> {
        let mut body = self.rx.await.map_err(|_| ClientError::Disconnected {
            addr: self.addr.clone(),
            reason: "connection task ended".into(),
        })??;
        T::decode(&mut body, self.version).map_err(|e| ClientError::Decode {
            api: self.api,
            reason: e.to_string(),
        })
    }
}
