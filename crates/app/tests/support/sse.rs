//! A Server-Sent Events reader for the tests: opens `GET /events` on a
//! running server and hands out its messages one by one.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

pub struct EventStream {
    body: Body,
    buffer: String,
}

impl EventStream {
    /// Opens the stream at `address`, as `key`'s owner or anonymously;
    /// the status when the server refuses.
    pub async fn open(
        address: std::net::SocketAddr,
        key: Option<&str>,
    ) -> Result<Self, StatusCode> {
        let mut request = Request::builder().uri("/events");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = super::request(address, request.body(Body::empty()).unwrap()).await;
        if response.status() != StatusCode::OK {
            return Err(response.status());
        }
        Ok(EventStream {
            body: Body::new(response.into_body()),
            buffer: String::new(),
        })
    }

    /// The next message's `event:` name and parsed `data:`, waiting at
    /// most `within`; `None` when the stream ended or nothing came.
    pub async fn next_within(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let message: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    message
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(|v| v.trim_start().to_string())
                };
                // Keep-alive comments have neither.
                if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                    let data = serde_json::from_str(&data).expect("data is JSON");
                    return Some((event, data));
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Ok(bytes) = frame.into_data() {
                        self.buffer
                            .push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
                    }
                }
                _ => return None,
            }
        }
    }

    /// Everything the stream sends until it ends, raw; `None` if it has
    /// not ended within `within`.
    pub async fn rest_within(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(bytes) = frame.into_data() {
                        self.buffer
                            .push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
                    }
                }
                Ok(None) | Ok(Some(Err(_))) => return Some(std::mem::take(&mut self.buffer)),
                Err(_) => return None,
            }
        }
    }

    /// The next message of type `kind`, skipping others; panics after
    /// `within`.
    pub async fn expect(&mut self, kind: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some((event, data)) if event == kind => return data,
                Some(_) => continue,
                None => panic!("no {kind} event within {within:?}"),
            }
        }
    }
}
