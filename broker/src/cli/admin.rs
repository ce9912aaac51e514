//! A small blocking client of the broker's admin HTTP API (`eddy pipeline`, `eddy sql`).

use std::time::Duration;

use serde_json::Value;

/// Where the admin API listens unless `--admin` says otherwise (as `eddy serve --http`).
pub(crate) const DEFAULT_ADMIN: &str = "127.0.0.1:9644";

#[derive(Debug)]
pub(crate) struct AdminClient {
    base: String,
    agent: ureq::Agent,
}

impl AdminClient {
    pub(crate) fn new(addr: &str) -> AdminClient {
        let base = if addr.starts_with("http://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", addr.trim_end_matches('/'))
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Dropping a pipeline waits for its final checkpoint; creating one compiles it.
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        AdminClient { base, agent }
    }

    pub(crate) fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.agent.get(format!("{}{path}", self.base)).call();
        self.finish(r)
    }

    pub(crate) fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.agent.delete(format!("{}{path}", self.base)).call();
        self.finish(r)
    }

    pub(crate) fn post(&self, path: &str, body: &[u8]) -> anyhow::Result<Value> {
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body);
        self.finish(r)
    }

    /// POSTs and returns the response body as a reader, for answers that stream (no overall
    /// time limit). A non-2xx answer is an error with the broker's sentence.
    pub(crate) fn post_stream(
        &self,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<impl std::io::Read + Send + 'static> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        let r = agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body);
        let resp = r.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(match self.finish(Ok(resp)) {
                Err(e) => e,
                Ok(_) => anyhow::anyhow!("unexpected answer from {}: {status}", self.base),
            });
        }
        Ok(resp.into_body().into_reader())
    }

    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach the admin API at {}: {e} (is `eddy serve` running? its --http address is the --admin here)",
            self.base
        )
    }

    fn finish(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut resp = r.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body: Value = resp
            .body_mut()
            .read_json()
            .map_err(|e| anyhow::anyhow!("unreadable answer from {} ({status}): {e}", self.base))?;
        if !status.is_success() {
            let msg = body["error"].as_str().unwrap_or("no reason given");
            anyhow::bail!("{msg}");
        }
        Ok(body)
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
