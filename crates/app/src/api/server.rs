//! The accept loop: each connection served by hyper's HTTP/1 server.
//!
//! `axum::serve` reads the first 24 bytes of every connection itself to
//! tell HTTP/2's preface from HTTP/1, then hands them back to hyper, whose
//! read buffer therefore takes two reads for the request head and grows
//! from 8 KB to 16 KB, kept for the connection's life. With 10,000 event
//! streams open that was 80 MB of the 290 MB they cost (measured with
//! massif: 16.3 KB of read buffer a stream). The service never spoke
//! HTTP/2 (axum is built without it; a proxy in front speaks it to
//! browsers), so this loop serves HTTP/1 only and the head is read once,
//! into 8 KB.
//!
//! It also bounds how long a client may take to send a request head
//! (`Waits::SERVE`: 30 s), which `axum::serve` did not: a client that
//! opens connections and sends nothing no longer holds them for ever.
//!
//! Otherwise it does what `axum::serve` did: the peer's address as
//! `ConnectInfo`, accept errors that are the peer's skipped and others
//! (out of file descriptors) waited out, and on shutdown no new
//! connections, idle ones closed, requests in flight finished. Unlike
//! it, shutdown waits for them at most `FINISH_WITHIN`: a client that
//! stops reading an answer (an event stream's last message) no longer
//! holds the process. And it serves no protocol upgrades (no route uses
//! one; a WebSocket route would need `serve_connection(..).with_upgrades()`).

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// How long the server waits for clients.
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    /// Longest a client may take to send a request's line and headers.
    pub header_read: Duration,
    /// Longest shutdown waits for the connections still answering.
    pub finish: Duration,
}

impl Waits {
    /// A request head within 30 s; at shutdown, 15 s for the answers in
    /// flight (a request is answered within `REQUEST_TIMEOUT`, 10 s, and
    /// writing it may take a little longer).
    pub const SERVE: Waits = Waits {
        header_read: Duration::from_secs(30),
        finish: Duration::from_secs(15),
    };
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting and returns once every connection has ended, or once
/// `waits.finish` has passed. A connection whose request head takes longer
/// than `waits.header_read` is closed.
pub async fn serve_http1(
    listener: TcpListener,
    router: Router,
    waits: Waits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(waits.header_read);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(waits.finish, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open,
            "stopped waiting for connections still answering after {:?}",
            waits.finish
        );
    }
    Ok(())
}

/// An accept error that is the peer's (it reset or went away) is skipped;
/// any other (out of file descriptors, most likely) is logged and waited
/// out for a second, as hyper's own server did, instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;

    use std::sync::Arc;

    use tokio::sync::Notify;

    use super::{serve_http1, Waits};

    /// Long enough for nothing in a test to run into it by accident.
    const BOUND: Duration = Duration::from_secs(20);

    /// `/slow` notifies `started` when it has begun.
    fn router(started: Arc<Notify>) -> Router {
        Router::new()
            .route(
                "/peer",
                get(
                    |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
                        peer.to_string()
                    },
                ),
            )
            .route(
                "/stream",
                get(|| async {
                    // Ten parts 100 ms apart, like an event stream.
                    let parts = futures::stream::unfold(0u32, |n| async move {
                        if n == 10 {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((
                            Ok::<_, std::convert::Infallible>(format!("part {n}\n")),
                            n + 1,
                        ))
                    });
                    axum::body::Body::from_stream(parts)
                }),
            )
            .route(
                "/slow",
                get(move || async move {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "finished"
                }),
            )
            .route(
                "/endless",
                get(|| async {
                    let chunk = "x".repeat(64 * 1024);
                    let parts = futures::stream::repeat_with(move || {
                        Ok::<_, std::convert::Infallible>(chunk.clone())
                    });
                    axum::body::Body::from_stream(parts)
                }),
            )
    }

    /// A running server on a free port.
    struct Server {
        address: std::net::SocketAddr,
        /// Stops it.
        stop: oneshot::Sender<()>,
        /// Resolves when it has returned.
        returned: tokio::task::JoinHandle<std::io::Result<()>>,
        /// Notified when `/slow` has begun.
        slow_started: Arc<Notify>,
    }

    async fn start(header_read: Duration, finish: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let slow_started = Arc::new(Notify::new());
        let returned = tokio::spawn(serve_http1(
            listener,
            router(slow_started.clone()),
            Waits {
                header_read,
                finish,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            address,
            stop,
            returned,
            slow_started,
        }
    }

    /// Sends `request` and reads until the server closes the connection.
    async fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(BOUND, stream.read_to_end(&mut answer))
            .await
            .expect("the server did not close the connection")
            .unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn the_handler_sees_the_peers_address() {
        let server = start(BOUND, BOUND).await;
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        let own = stream.local_addr().unwrap();
        let answer = exchange(&mut stream, "GET /peer HTTP/1.0\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.0 200 OK"), "{answer}");
        assert!(answer.ends_with(&own.to_string()), "{answer}");
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
        let server = start(Duration::from_millis(200), BOUND).await;
        let address = server.address;
        let mut stream = TcpStream::connect(address).await.unwrap();
        // A request line and one header, then nothing: a slow client, or
        // one holding connections open on purpose.
        let answer = exchange(&mut stream, "GET /peer HTTP/1.1\r\nHost: x\r\n").await;
        assert!(!answer.contains("200 OK"), "{answer}");
        // A complete request on a new connection is still served.
        let mut stream = TcpStream::connect(address).await.unwrap();
        let answer = exchange(&mut stream, "GET /peer HTTP/1.0\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.0 200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn a_stream_outlives_the_time_allowed_for_a_request_head() {
        let server = start(Duration::from_millis(200), BOUND).await;
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        // HTTP/1.1 and keep-alive, as browsers' EventSource asks: 1 s of
        // body, five times the head's limit.
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&answer).contains("part 9") {
            let n = tokio::time::timeout(BOUND, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert_ne!(n, 0, "closed after {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn shutdown_finishes_the_request_in_flight_closes_idle_connections_and_returns() {
        let server = start(BOUND, BOUND).await;
        let address = server.address;
        // An idle keep-alive connection, after one answer.
        let mut idle = TcpStream::connect(address).await.unwrap();
        idle.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 17];
        idle.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
        // A request that takes 300 ms, under way when the server stops.
        let mut busy = TcpStream::connect(address).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.0\r\n\r\n").await.unwrap();
        server.slow_started.notified().await;
        server.stop.send(()).unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(BOUND, busy.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 200 OK"), "{answer}");
        assert!(answer.ends_with("finished"), "{answer}");
        // The idle connection is closed rather than kept.
        let mut rest = Vec::new();
        tokio::time::timeout(BOUND, idle.read_to_end(&mut rest))
            .await
            .expect("the idle connection was closed")
            .unwrap();
        tokio::time::timeout(BOUND, server.returned)
            .await
            .expect("the server returned")
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(address).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_stops_waiting_for_a_client_that_does_not_read() {
        let server = start(BOUND, Duration::from_millis(300)).await;
        // An answer without end, which the client never reads: the
        // socket's buffers fill and the server cannot finish writing.
        let mut stuck = TcpStream::connect(server.address).await.unwrap();
        stuck
            .write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // The answer has begun; then the client reads no more.
        let mut begun = [0u8; 1024];
        stuck.read_exact(&mut begun).await.unwrap();
        server.stop.send(()).unwrap();
        tokio::time::timeout(BOUND, server.returned)
            .await
            .expect("the server returned despite the stuck client")
            .unwrap()
            .unwrap();
        drop(stuck);
    }
}
