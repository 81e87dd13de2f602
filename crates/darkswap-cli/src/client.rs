//! The commands that call a running daemon's API.

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

/// Talks to the daemon at `base` (e.g. `http://127.0.0.1:7070`).
#[derive(Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the API at `addr`.
    pub fn new(addr: &str) -> Self {
        let base = if addr.starts_with("http") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        Client {
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "no darkswap daemon is running at {} (start one with `darkswap daemon`)",
                    self.base
                )
            } else {
                anyhow::anyhow!("request to the daemon failed: {e}")
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.context("reading the daemon's answer")?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        if !status.is_success() {
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or(&text)
                .to_owned();
            bail!("{message} ({status})");
        }
        Ok(body)
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// POST JSON to a path.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// DELETE a path.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Prints server-sent events, one JSON object per line, until the daemon stops.
    pub async fn follow_events(&self) -> anyhow::Result<()> {
        let resp = self
            .http
            .get(format!("{}/v1/events", self.base))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("no darkswap daemon is running at {} ({e})", self.base))?;
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        println!("{}", data.trim());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Prints rows as aligned columns under a header.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

/// The fields of an order as table cells.
pub fn order_row(o: &Value) -> Vec<String> {
    let s = |k: &str| match &o[k] {
        Value::String(v) => v.clone(),
        v => v.to_string(),
    };
    vec![
        s("id"),
        s("side"),
        s("amount"),
        s("base"),
        s("price"),
        s("quote"),
        s("maker"),
    ]
}

/// Header matching [`order_row`].
pub const ORDER_HEADER: [&str; 7] = ["ID", "SIDE", "AMOUNT", "BASE", "PRICE", "QUOTE", "MAKER"];

/// The JSON body of `POST /v1/orders`.
pub fn create_body(
    side: &str,
    base: &str,
    quote: &str,
    amount: u64,
    price: u64,
    expires_in: u64,
) -> Value {
    json!({ "side": side, "base": base, "quote": quote, "amount": amount, "price": price, "expires_in": expires_in })
}
