//! A blocking HTTP client of a Vellum server (`vellum remote`, the cluster commands, the
//! cluster demo and torture): JSON in and out, errors carrying the server's message.

use std::time::Duration;

use serde_json::Value;

use crate::BoxError;

/// A server's base URL and a connection pool.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

/// What a call got back: its status and JSON body (`Value::Null` if none).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Answer {
    /// `result` of a 2xx answer, or an error with the server's message.
    pub(crate) fn result(self, what: &str) -> Result<Value, BoxError> {
        if (200..300).contains(&self.status) {
            return Ok(self.body["result"].clone());
        }
        let message = self.body["status"]["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| self.body.to_string());
        Err(format!("{what}: HTTP {}: {message}", self.status).into())
    }
}

impl Client {
    /// A client of the server at `url` (`http://host:port`, or `host:port`).
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Client, BoxError> {
        let base = if url.contains("://") {
            url.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", url.trim_end_matches('/'))
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Client { base, http })
    }

    /// The base URL.
    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    /// One call; a connection failure is an `Err`, any HTTP status an `Ok`.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, BoxError> {
        let method: reqwest::Method = method.parse()?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .map_err(|e| format!("{}{path}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// A call whose non-2xx answer is an error.
    pub(crate) fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, BoxError> {
        self.call(method, path, body)?
            .result(&format!("{method} {}{path}", self.base))
    }

    /// `GET path` streamed into `file` (written whole or not at all: a temporary name, then
    /// renamed); returns the bytes written.
    pub(crate) fn download(&self, path: &str, file: &std::path::Path) -> Result<u64, BoxError> {
        let mut resp = self.http.get(format!("{}{path}", self.base)).send()?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body =
                serde_json::from_str(&resp.text().unwrap_or_default()).unwrap_or(Value::Null);
            return Err(Answer { status, body }
                .result(&format!("GET {}{path}", self.base))
                .err()
                .unwrap_or_else(|| "download failed".into()));
        }
        let tmp = file.with_extension("part");
        let mut out = std::fs::File::create(&tmp)?;
        let bytes = std::io::copy(&mut resp, &mut out)?;
        out.sync_all()?;
        std::fs::rename(&tmp, file)?;
        Ok(bytes)
    }

    /// `POST path` with `file` streamed as the body.
    pub(crate) fn upload(&self, path: &str, file: &std::path::Path) -> Result<Value, BoxError> {
        let f = std::fs::File::open(file)?;
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/octet-stream")
            .body(reqwest::blocking::Body::from(f))
            .send()?;
        let status = resp.status().as_u16();
        let body = serde_json::from_str(&resp.text().unwrap_or_default()).unwrap_or(Value::Null);
        Answer { status, body }.result(&format!("POST {}{path}", self.base))
    }

    /// `GET path` as text (metrics).
    pub(crate) fn text(&self, path: &str) -> Result<String, BoxError> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .send()?
            .error_for_status()?
            .text()?)
    }
}
