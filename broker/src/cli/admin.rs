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

    fn finish(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut resp = r.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the admin API at {}: {e} (is `eddy serve` running? its --http address is the --admin here)",
                self.base
            )
        })?;
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
