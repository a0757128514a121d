//! Who asked, for the audit log: the client's address, the request id and
//! the credential an operator used, carried with an admin request (a
//! task-local value) so that [`App::audit`](super::App::audit) records
//! them with whatever the request does, without every use case passing
//! them along. Work without a request (the scheduler, the CLI) has none.

use std::future::Future;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// What an admin request says about itself.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub client: Option<String>,
    pub request_id: Option<String>,
    /// Set once the operator is known (`session:<id>`, `token:<id>`,
    /// `break-glass`).
    credential: Arc<Mutex<Option<String>>>,
}

/// What an audit row records of the request, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditContext {
    pub client: Option<String>,
    pub request_id: Option<String>,
    pub credential: Option<String>,
}

impl RequestContext {
    pub fn new(client: Option<String>, request_id: Option<String>) -> Self {
        RequestContext {
            client,
            request_id,
            credential: Arc::default(),
        }
    }

    /// Runs `work` with this context.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        REQUEST.scope(self, work).await
    }
}

/// Records the credential of the operator acting in this request.
pub fn set_credential(credential: &str) {
    let _ = REQUEST.try_with(|c| {
        *c.credential.lock().unwrap_or_else(|e| e.into_inner()) = Some(credential.to_string())
    });
}

/// This request's context, for the audit log; empty outside a request.
pub fn audit_context() -> AuditContext {
    REQUEST
        .try_with(|c| AuditContext {
            client: c.client.clone(),
            request_id: c.request_id.clone(),
            credential: c
                .credential
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
        .unwrap_or_default()
}

/// `tokio::spawn` that carries this request's context into the task (a
/// settlement that outlives its request still names who asked).
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match REQUEST.try_with(Clone::clone) {
        Ok(context) => tokio::spawn(REQUEST.scope(context, work)),
        Err(_) => tokio::spawn(work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_context_follows_the_request_into_spawned_work_and_nowhere_else() {
        assert_eq!(audit_context(), AuditContext::default());
        let context = RequestContext::new(Some("10.0.0.7".into()), Some("req-1".into()));
        let seen = context
            .scope(async {
                set_credential("session:4");
                spawn(async { audit_context() }).await.unwrap()
            })
            .await;
        assert_eq!(
            seen,
            AuditContext {
                client: Some("10.0.0.7".into()),
                request_id: Some("req-1".into()),
                credential: Some("session:4".into()),
            }
        );
        assert_eq!(
            spawn(async { audit_context() }).await.unwrap(),
            AuditContext::default()
        );
    }
}
