//! `updown probe`: one plain HTTP GET, for a container's health check
//! (the image has no curl); exits 0 on 200, 1 otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::output::Printer;
use crate::config::Config;
use crate::error::{AppError, AppResult};

/// The status line's code of `GET path` at `address`, or `None` when it
/// does not answer within `timeout`.
pub fn status(address: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// `http://host:port/path` as an address and a path.
fn parse(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs (the probe talks to this host's own serve)")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].to_string()),
        None => (rest, "/".to_string()),
    };
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    Ok((address, path))
}

/// Probes `url`, by default this configuration's own readiness
/// (`BIND_ADDR`, 0.0.0.0 read as 127.0.0.1).
pub fn run(config: &Config, url: Option<String>, out: &Printer) -> AppResult<i32> {
    let url = url.unwrap_or_else(|| {
        let mut address = config.http.bind_addr;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{address}/health/ready")
    });
    let (address, path) = parse(&url).map_err(|e| AppError::Invalid(format!("--url: {e}")))?;
    let status = status(address, &path, Duration::from_secs(2));
    let ok = status == Some(200);
    out.print(
        &serde_json::json!({ "url": url, "status": status, "ok": ok }),
        || match status {
            Some(code) => format!("{url}: {code}"),
            None => format!("{url}: no answer"),
        },
    );
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_an_address_and_a_path() {
        assert_eq!(
            parse("http://127.0.0.1:8000/health/ready").unwrap(),
            ("127.0.0.1:8000".parse().unwrap(), "/health/ready".into())
        );
        assert_eq!(parse("http://127.0.0.1:9").unwrap().1, "/");
        assert!(parse("https://127.0.0.1:8000/").is_err());
        assert!(parse("http://no-port").is_err());
    }
}
