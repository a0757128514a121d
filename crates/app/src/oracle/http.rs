//! HTTP providers of closes ([`Provider`]: the timeouts, retries and
//! bounded bodies they share; each provider's [`Api`] says how to ask and
//! how to read), and Polygon.io's daily open/close API, the first of them:
//! `GET {base}/v1/open-close/{ticker}/{date}?adjusted=true`, the key sent
//! as `Authorization: Bearer` (never in the URL, so it cannot leak into
//! logs). A 200 answer is `{"status": "OK", "from": "<date>", "close":
//! <number>, ...}`; a session without data is 404 `{"status":
//! "NOT_FOUND"}`.
//!
//! Each attempt has a timeout; timeouts, connection errors, 429 and 5xx
//! are retried a bounded number of times with jittered exponential
//! backoff; anything else that is not a close (401/403, a body that is not
//! the documented shape, another date, a price that is not positive) is
//! an error at once. The close is read from the JSON text exactly, never
//! through a float.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use updown_domain::ids::Market;
use updown_domain::round::Price;

use super::{Oracle, OracleError};
use crate::retry::Backoff;
use crate::secret::Secret;

/// Largest answer read; the documented one is a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// `https://api.polygon.io`, or a compatible server.
    pub base_url: String,
    pub api_key: Secret,
    /// The provider's ticker, e.g. `I:NDX` for the Nasdaq-100 index.
    pub ticker: String,
    /// Longest one attempt may take.
    pub timeout: Duration,
    /// Attempts per fetch (at least 1).
    pub attempts: u32,
    /// First wait between attempts; it doubles up to 16 times this.
    pub retry_wait: Duration,
}

/// What differs between HTTP providers: how one attempt asks for a day's
/// close and reads the answer. The rest (timeouts, retries, the bounded
/// body, the name) is [`Provider`]'s.
#[async_trait]
pub trait Api: Send + Sync + 'static {
    /// The provider's name, before the host in the source recorded.
    const PROVIDER: &'static str;

    async fn attempt(
        client: &reqwest::Client,
        settings: &HttpSettings,
        date: NaiveDate,
    ) -> Result<Option<Price>, Failure>;
}

/// An HTTP provider of closes, as an oracle.
pub struct Provider<A> {
    settings: HttpSettings,
    client: reqwest::Client,
    name: String,
    api: std::marker::PhantomData<A>,
}

/// Polygon.io's daily open/close.
pub struct Polygon;

/// Polygon.io as an oracle (`ORACLE=http`).
pub type HttpOracle = Provider<Polygon>;

impl<A: Api> Provider<A> {
    pub fn new(settings: HttpSettings) -> Result<Provider<A>, OracleError> {
        Ok(Provider {
            name: source_name(A::PROVIDER, &settings)?,
            client: client(&settings)?,
            settings,
            api: std::marker::PhantomData,
        })
    }
}

#[async_trait]
impl<A: Api> Oracle for Provider<A> {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn close(&self, _market: &Market, date: NaiveDate) -> Result<Option<Price>, OracleError> {
        with_retries(&self.name, &self.settings, date, || {
            A::attempt(&self.client, &self.settings, date)
        })
        .await
    }
}

/// The documented 200 answer (the fields used).
#[derive(Deserialize)]
struct OpenClose<'a> {
    status: &'a str,
    from: &'a str,
    #[serde(borrow)]
    close: &'a RawValue,
}

#[derive(Deserialize)]
struct StatusOnly<'a> {
    status: &'a str,
}

/// Why one attempt gave no close.
pub enum Failure {
    /// Worth another attempt: timeouts, connection errors, 429, 5xx.
    Transient(String),
    /// Not going to change by asking again.
    Final(String),
}

/// `Authorization: {scheme} {key}`, marked sensitive (never logged or
/// compressed with other headers); `variable` names the key when it holds
/// what a header cannot carry.
pub(super) fn authorization(
    scheme: &str,
    key: &Secret,
    variable: &str,
) -> Result<reqwest::header::HeaderValue, Failure> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("{scheme} {}", key.expose()))
        .map_err(|_| {
        Failure::Final(format!(
            "{variable} holds characters an HTTP header cannot carry"
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// One GET with the key in `authorization`: the status and the body (at
/// most `MAX_BODY_BYTES`). Not reaching the provider is transient.
pub(super) async fn get(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    authorization: reqwest::header::HeaderValue,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    let response = client
        .get(url)
        .header(reqwest::header::AUTHORIZATION, authorization)
        .send()
        .await
        .map_err(|e| Failure::Transient(describe(e)))?;
    let status = response.status();
    Ok((status, read_limited(response).await?))
}

/// `base` with `segments` appended, each encoded as one path segment (so
/// a symbol cannot add segments of its own), and `query` as its query.
pub(super) fn endpoint(
    base: &str,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| e.to_string())?;
    url.path_segments_mut()
        .map_err(|()| format!("{base:?} cannot be a base URL"))?
        .pop_if_empty()
        .extend(segments);
    if query.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(query);
    }
    Ok(url)
}

/// What one attempt gave, in words a test compares: the close, or the
/// failure prefixed `final:` or `transient:`.
#[cfg(test)]
pub(super) fn told(attempt: Result<Option<Price>, Failure>) -> Result<Option<String>, String> {
    match attempt {
        Ok(close) => Ok(close.map(|p| p.to_string())),
        Err(Failure::Final(why)) => Err(format!("final: {why}")),
        Err(Failure::Transient(why)) => Err(format!("transient: {why}")),
    }
}

/// Longest part of a provider's own words kept in an error.
const SAID_CHARS: usize = 200;

/// What a provider said (an error message of its answer), on one line and
/// at most [`SAID_CHARS`] characters, for errors and logs.
pub(super) fn said(text: &str) -> String {
    let mut kept: String = text
        .chars()
        .take(SAID_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(SAID_CHARS).is_some() {
        kept.push('…');
    }
    kept
}

/// An HTTP client for a provider: the attempt's timeout, no redirects.
pub(super) fn client(settings: &HttpSettings) -> Result<reqwest::Client, OracleError> {
    crate::tls::install_crypto();
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("updown/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OracleError::Source(format!("building the HTTP client: {e}")))
}

/// `provider:host`, the name a provider's closes are recorded under.
pub(super) fn source_name(provider: &str, settings: &HttpSettings) -> Result<String, OracleError> {
    let host = reqwest::Url::parse(&settings.base_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .ok_or_else(|| OracleError::Source(format!("{:?} is not a URL", settings.base_url)))?;
    Ok(format!("{provider}:{host}"))
}

/// Runs `attempt` up to `settings.attempts` times, waiting with jittered
/// exponential backoff after each transient failure; a final one ends at
/// once.
pub(super) async fn with_retries<F, Fut>(
    name: &str,
    settings: &HttpSettings,
    date: NaiveDate,
    mut attempt: F,
) -> Result<Option<Price>, OracleError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Price>, Failure>>,
{
    let attempts = settings.attempts.max(1);
    let mut backoff = Backoff::new(settings.retry_wait, settings.retry_wait * 16);
    let mut last = String::new();
    for number in 1..=attempts {
        match attempt().await {
            Ok(close) => return Ok(close),
            Err(Failure::Final(why)) => {
                return Err(OracleError::Source(format!("{name}: {why}")));
            }
            Err(Failure::Transient(why)) => {
                tracing::warn!(oracle = %name, %date, attempt = number, attempts, error = %why, "oracle attempt failed");
                last = why;
            }
        }
        if number < attempts {
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }
    Err(OracleError::Source(format!(
        "{name}: {attempts} attempts failed; the last: {last}"
    )))
}

#[async_trait]
impl Api for Polygon {
    const PROVIDER: &'static str = "polygon";

    async fn attempt(
        client: &reqwest::Client,
        settings: &HttpSettings,
        date: NaiveDate,
    ) -> Result<Option<Price>, Failure> {
        let url = format!(
            "{}/v1/open-close/{}/{date}?adjusted=true",
            settings.base_url.trim_end_matches('/'),
            settings.ticker
        );
        let key = authorization("Bearer", &settings.api_key, "ORACLE_API_KEY")?;
        let (status, body) = get(client, &url, key).await?;
        match status {
            StatusCode::OK => parse_close(&body, date).map(Some).map_err(Failure::Final),
            StatusCode::NOT_FOUND => match serde_json::from_slice::<StatusOnly>(&body) {
                Ok(answer) if answer.status == "NOT_FOUND" => Ok(None),
                _ => Err(Failure::Final(
                    "404 without the provider's NOT_FOUND body: is ORACLE_HTTP_URL right?".into(),
                )),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure::Final(format!(
                "the provider refused the key ({status}): check ORACLE_API_KEY"
            ))),
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Err(
                Failure::Transient(format!("the provider answered {status}")),
            ),
            other => Err(Failure::Final(format!("the provider answered {other}"))),
        }
    }
}

/// A reqwest error in words, without the URL.
pub(super) fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error.without_url())
}

/// The answer's body, at most [`MAX_BODY_BYTES`].
pub(super) async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::Transient(describe(e)))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Failure::Final(format!(
                "the answer is longer than {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The close in a 200 answer for `date`, or why the answer is nonsense.
fn parse_close(body: &[u8], date: NaiveDate) -> Result<Price, String> {
    let answer: OpenClose = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        format!("not the documented answer ({e}): {start:?}")
    })?;
    if answer.status != "OK" {
        return Err(format!("status {:?}, not OK", answer.status));
    }
    if answer.from != date.to_string() {
        return Err(format!("asked for {date}, answered for {:?}", answer.from));
    }
    exact_price(answer.close.get())
}

/// A price from its text, exactly (never through a float).
pub(super) fn exact_price(text: &str) -> Result<Price, String> {
    let value = rust_decimal::Decimal::from_str_exact(text)
        .or_else(|_| rust_decimal::Decimal::from_scientific(text))
        .map_err(|_| format!("close {text} is not a number"))?;
    Price::new(value).map_err(|e| format!("close {text}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> NaiveDate {
        "2023-01-09".parse().unwrap()
    }

    #[test]
    fn the_documented_answer_gives_its_close_exactly() {
        // Polygon's documented example, for I:NDX's shape.
        let body = br#"{"afterHours":322.1,"close":20111.05,"from":"2023-01-09","high":326.2,"low":322.3,"open":324.66,"preMarket":324.5,"status":"OK","symbol":"I:NDX","volume":26122646}"#;
        assert_eq!(parse_close(body, date()).unwrap().to_string(), "20111.05");
        // Digits a float would lose are kept.
        let precise = br#"{"close":20111.000000000000000001,"from":"2023-01-09","status":"OK"}"#;
        assert_eq!(
            parse_close(precise, date()).unwrap().to_string(),
            "20111.000000000000000001"
        );
    }

    #[test]
    fn nonsense_is_named() {
        for (body, says) in [
            (
                &b"<html>Bad gateway</html>"[..],
                "not the documented answer",
            ),
            (
                br#"{"close":1,"from":"2023-01-10","status":"OK"}"#,
                "answered for",
            ),
            (br#"{"close":-5,"from":"2023-01-09","status":"OK"}"#, "-5"),
            (
                br#"{"close":"abc","from":"2023-01-09","status":"OK"}"#,
                "not a number",
            ),
            (
                br#"{"close":1,"from":"2023-01-09","status":"DELAYED"}"#,
                "not OK",
            ),
            (br#"{"from":"2023-01-09","status":"OK"}"#, "missing field"),
        ] {
            let error = parse_close(body, date()).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn a_providers_words_are_kept_on_one_line_and_short() {
        assert_eq!(said("Invalid token."), "Invalid token.");
        assert_eq!(said("two\nlines\r\tand a tab"), "two lines  and a tab");
        let long = "x".repeat(5_000);
        assert_eq!(said(&long), format!("{}…", "x".repeat(SAID_CHARS)));
        let url = endpoint("http://127.0.0.1:9/?token=leak", &["a"], &[]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/a",
            "no query of the base's"
        );
    }
}
