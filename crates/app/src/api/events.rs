//! `GET /events`: the live event stream (Server-Sent Events). Anyone gets
//! the public round events (and the pools' moves); a caller with an API
//! key or the session cookie also gets their own bets, deposits and
//! withdrawals whole. Each message's `event:` is the type and its `data:`
//! the JSON `{"type", "time", "payload"}`. A stream too slow to keep up is
//! sent `resync` (refetch what you show) and goes on. Streams end when the
//! server shuts down; browsers' EventSource reconnects by itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use updown_domain::ids::UserId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::ApiError;
use crate::error::AppError;
use crate::events::Event;
use crate::services::App;

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
}

impl Default for EventStreams {
    fn default() -> EventStreams {
        EventStreams {
            permits: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
            stopping: Arc::new(watch::channel(false).0),
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
        (status = 200, description = "text/event-stream: round_opened, bet_placed and bet_cancelled (round, side, stake), round_locked, round_settled, round_voided for everyone; with a credential also your own bet_placed/bet_cancelled (with bet_id), deposit_credited and withdrawal_updated; `resync` when you missed some", content_type = "text/event-stream", body = String),
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
    let stopping = streams.stopping.subscribe();
    let stream = viewer_stream(app.events.subscribe(), stopping, viewer.0, permit);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The events `viewer` may see, until the server stops.
fn viewer_stream(
    events: broadcast::Receiver<Arc<Event>>,
    stopping: watch::Receiver<bool>,
    viewer: Option<UserId>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(Some((events, stopping, permit)), move |state| async move {
        let (mut events, mut stopping, permit) = state?;
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                _ = stopping.wait_for(|stop| *stop) => {
                    // The last message: when to reconnect (to another
                    // instance, behind a load balancer).
                    drop(permit);
                    let bye = SseEvent::default()
                        .retry(reconnect_after())
                        .comment("server restarting: reconnect");
                    return Some((Ok(bye), None));
                }
            };
            let message = match received {
                Ok(event) => match event.seen_by(viewer) {
                    Some(out) => SseEvent::default()
                        .event(out.kind)
                        .json_data(&out)
                        .expect("events serialise"),
                    None => continue,
                },
                Err(RecvError::Lagged(missed)) => SseEvent::default()
                    .event("resync")
                    .data(format!("{{\"missed\":{missed}}}")),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(message), Some((events, stopping, permit))));
        }
    })
}

/// Between 1 and about 5 s, at random, so the streams of a stopping server
/// do not all reconnect in the same instant.
fn reconnect_after() -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    Duration::from_millis(1_000 + u64::from(byte[0]) * 16)
}
