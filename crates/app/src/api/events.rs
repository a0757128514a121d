//! `GET /events`: the live event stream (Server-Sent Events). Anyone gets
//! the public round events, and the pools as they move: a `pools` event at
//! most every 100 ms per round while bets arrive (the totals, read from the
//! database, not one event per bet). A caller with an API key or the
//! session cookie also gets their own bets, deposits and withdrawals whole,
//! one event each. Each message's `event:` is the type and its `data:` the
//! JSON `{"type", "time", "payload"}`. A stream too slow to keep up is sent
//! `resync` (refetch what you show) and goes on. Streams end when the
//! server shuts down; browsers' EventSource reconnects by itself. Events
//! are routed and rendered once per process, not once per stream
//! ([`super::fanout`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use updown_domain::ids::UserId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::fanout::{resync, Fanout, Frame, Listener};
use super::ApiError;
use crate::error::AppError;
use crate::services::App;

/// Event streams one server serves at once.
pub const MAX_EVENT_STREAMS: usize = 10_000;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_events))
}

/// One server's event streams: at most [`MAX_EVENT_STREAMS`] open, all
/// ended by [`EventStreams::stop`] when the server stops (a stream never
/// ends by itself). Reaches the handler as an extension.
#[derive(Clone)]
pub struct EventStreams {
    permits: Arc<Semaphore>,
    stopping: Arc<watch::Sender<bool>>,
    /// Started with the first stream.
    fanout: Arc<std::sync::OnceLock<Arc<Fanout>>>,
}

impl Default for EventStreams {
    fn default() -> EventStreams {
        EventStreams {
            permits: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
            stopping: Arc::new(watch::channel(false).0),
            fanout: Arc::default(),
        }
    }
}

impl EventStreams {
    /// Ends every stream, open or to come.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// The caller when they sent a credential (which must then be valid),
/// or nobody.
pub struct MaybeUser(pub Option<UserId>);

impl FromRequestParts<App> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let has_credential = parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
            || super::auth::session_cookie(&parts.headers).is_some();
        if !has_credential {
            return Ok(MaybeUser(None));
        }
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, app).await?;
        Ok(MaybeUser(Some(user.id)))
    }
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    security((), ("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "text/event-stream: round_opened, round_locked, round_settled, round_voided, and pools (round, pool_up, pool_down, bets_up, bets_down, implied multipliers, since: when the first change it shows was made; at most every 100 ms per round while bets arrive) for everyone; with a credential also your own bet_placed/bet_cancelled (round, side, stake, bet_id), deposit_credited and withdrawal_updated; `resync` when you missed some", content_type = "text/event-stream", body = String),
        (status = 401, description = "a credential was sent and is not valid", body = crate::api::ErrorBody),
        (status = 503, description = "too many open streams", body = crate::api::ErrorBody),
    ),
)]
async fn get_events(
    State(app): State<App>,
    Extension(streams): Extension<EventStreams>,
    viewer: MaybeUser,
) -> Result<Response, ApiError> {
    let permit = streams.permits.clone().try_acquire_owned().map_err(|_| {
        AppError::Unavailable("too many event streams are open; retry later".into())
    })?;
    let fanout = streams
        .fanout
        .get_or_init(|| Fanout::start(app.clone(), streams.stopping.subscribe()));
    let stopping = streams.stopping.subscribe();
    let stream = viewer_stream(fanout.listen(viewer.0), stopping, permit);
    // The frames are Server-Sent Events text already, shared by every
    // stream (see `fanout`), so the body sends them as they are.
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A stream's frames (everyone's and its player's own), until the server
/// stops.
fn viewer_stream(
    listener: Listener,
    stopping: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Frame, Infallible>> {
    stream::unfold(
        Some((listener, stopping, permit)),
        move |state| async move {
            let (mut listener, mut stopping, permit) = state?;
            let received = tokio::select! {
                received = listener.public.recv() => received,
                received = own_frame(&mut listener.own) => received,
                _ = stopping.wait_for(|stop| *stop) => {
                    // The last message: when to reconnect (to another
                    // instance, behind a load balancer).
                    drop(permit);
                    let bye = format!(
                        "retry: {}\n: server restarting: reconnect\n\n",
                        reconnect_after().as_millis()
                    );
                    return Some((Ok(Frame::from(bye)), None));
                }
            };
            let frame = match received {
                Ok(frame) => frame,
                Err(RecvError::Lagged(missed)) => resync(missed),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(frame), Some((listener, stopping, permit))))
        },
    )
}

/// The next frame of a player's own channel; never, for nobody's.
async fn own_frame(own: &mut Option<broadcast::Receiver<Frame>>) -> Result<Frame, RecvError> {
    match own {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Between 1 and about 5 s, at random, so the streams of a stopping server
/// do not all reconnect in the same instant.
fn reconnect_after() -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    Duration::from_millis(1_000 + u64::from(byte[0]) * 16)
}
