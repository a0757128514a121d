//! The bank test's journal: every money-moving request exactly as sent
//! (operation, player, Idempotency-Key, body) and what the client learnt
//! of it: acknowledged, refused, or indeterminate (it may or may not have
//! happened). Also a small seeded random generator.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// What a request asks for.
#[derive(Clone, Debug)]
pub enum Operation {
    Bet { side: &'static str, stake: i64 },
    Cancel { bet: i64 },
    Withdraw { amount: i64 },
}

/// One money-moving request, replayable byte for byte.
#[derive(Clone, Debug)]
pub struct Request {
    pub operation: Operation,
    /// Index into the players.
    pub player: usize,
    pub key: String,
    pub method: Method,
    pub path: String,
    pub body: Option<String>,
}

impl Request {
    pub fn new(operation: Operation, player: usize, key: String) -> Request {
        let (method, path, body) = match &operation {
            Operation::Bet { side, stake } => (
                Method::POST,
                "/bets".to_string(),
                Some(format!(r#"{{"side":"{side}","amount":{stake}}}"#)),
            ),
            Operation::Cancel { bet } => (Method::DELETE, format!("/bets/{bet}"), None),
            Operation::Withdraw { amount } => (
                Method::POST,
                "/withdrawals".to_string(),
                Some(format!(
                    r#"{{"amount":{amount},"address":"{}"}}"#,
                    super::WITHDRAWAL_ADDRESS
                )),
            ),
        };
        Request {
            operation,
            player,
            key,
            method,
            path,
            body,
        }
    }

    /// "bet", "cancel" or "withdrawal".
    pub fn kind(&self) -> &'static str {
        match self.operation {
            Operation::Bet { .. } => "bet",
            Operation::Cancel { .. } => "cancel",
            Operation::Withdraw { .. } => "withdrawal",
        }
    }
}

/// What the client knows of a request's effect.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A 2xx answer with its JSON body: it took effect.
    Acknowledged(Value),
    /// A definite no: a 4xx other than 409 `idempotency_in_progress`.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// A timeout, a connection error, 409 `idempotency_in_progress`, a 5xx
    /// (503 `timeout` among them) or an unreadable answer: it may or may
    /// not have happened.
    Indeterminate(String),
}

impl Outcome {
    pub fn is_definite(&self) -> bool {
        !matches!(self, Outcome::Indeterminate(_))
    }
}

/// A request and what became of it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub request: Request,
    pub outcome: Outcome,
    /// Attempts with the same key and body (1: no retry).
    pub attempts: u32,
}

/// Sends `request` as `api_key` with a whole-exchange `timeout`.
pub async fn send(
    http: &reqwest::Client,
    address: SocketAddr,
    api_key: &str,
    request: &Request,
    timeout: Duration,
) -> Outcome {
    let mut builder = http
        .request(
            request.method.clone(),
            format!("http://{address}{}", request.path),
        )
        .bearer_auth(api_key)
        .header("idempotency-key", &request.key)
        .timeout(timeout);
    if let Some(body) = &request.body {
        builder = builder
            .header("content-type", "application/json")
            .body(body.clone());
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(e) => return Outcome::Indeterminate(failure(&e)),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => classify(status, &bytes),
        Err(e) => Outcome::Indeterminate(failure(&e)),
    }
}

/// Sorts an answer into the three outcomes.
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let error = |field: &str| {
        json.as_ref()
            .and_then(|j| j["error"][field].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (code, message) = (error("code"), error("message"));
    match (status, json) {
        (200..=299, Some(json)) => Outcome::Acknowledged(json),
        (200..=299, None) => Outcome::Indeterminate(format!("{status} with an unreadable body")),
        (409, _) if code == "idempotency_in_progress" => {
            Outcome::Indeterminate("409 idempotency_in_progress".into())
        }
        (400..=499, _) => Outcome::Refused {
            status,
            code,
            message,
        },
        _ => Outcome::Indeterminate(format!("{status} {code}")),
    }
}

fn failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connect".into()
    } else {
        "connection".into()
    }
}

/// SplitMix64: small, seedable, good enough to pick operations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed from the operating system.
    pub fn seed() -> u64 {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("randomness");
        u64::from_le_bytes(bytes)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// 128 random bits in hex: an Idempotency-Key.
    pub fn key(&mut self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }
}
