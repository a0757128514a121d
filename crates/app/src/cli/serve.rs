//! `updown serve`: the admin token, the database, the listener, the API,
//! and the scheduler beside them until Ctrl-C or SIGTERM.

use crate::config::{refuse_unsafe_production, Config, Purpose};
use crate::error::{AppError, AppResult};

/// Runs the service until Ctrl-C or SIGTERM.
pub async fn run(mut config: Config) -> AppResult<()> {
    // Production needs more to serve than to run a command.
    refuse_unsafe_production(&config, Purpose::Serve)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    if config.production {
        for variable in &config.explanation().plain_secrets {
            tracing::warn!(
                "{variable} is given in the environment, where anyone who can list the process's \
                 environment reads it; put it in a file readable by this user only and set {variable}_FILE"
            );
        }
    }
    if config.http.admin_token.is_none() {
        let token = crate::services::random_hex()?;
        eprintln!("ADMIN_TOKEN is not set: for this run only, the admin token is {token}");
        config.http.admin_token = Some(crate::secret::Secret::new(token));
    }
    crate::metrics::handle();
    let app = crate::startup::app(config)
        .await
        .map_err(AppError::Internal)?;
    // Warns in development without WALLET_XPUB (production has one).
    app.deposit_wallet()?;
    check_chain(&app).await?;
    let address = app.config.http.bind_addr;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| AppError::Invalid(format!("cannot listen on {address} (BIND_ADDR): {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| AppError::Internal(e.into()))?;
    eprintln!(
        "updown listening on http://{bound} (database: {:?})",
        app.backend()
    );
    let (stop_scheduler, scheduler_stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = app.config.scheduler.enabled.then(|| {
        let app = app.clone();
        tokio::spawn(async move {
            app.run_scheduler(async move {
                let _ = scheduler_stopped.await;
            })
            .await
        })
    });
    let (stop_watcher, watcher_stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = (app.config.scheduler.enabled && app.watch.is_some()).then(|| {
        let app = app.clone();
        tokio::spawn(async move {
            app.run_chain_watcher(async move {
                let _ = watcher_stopped.await;
            })
            .await
        })
    });
    let verify_every = app
        .config
        .scheduler
        .verify_every
        .filter(|_| app.config.scheduler.enabled);
    let verifier = verify_every.map(|every| {
        let app = app.clone();
        tokio::spawn(async move {
            // Stopped by abort, wherever it is: a checkpoint is written in
            // one transaction, or not at all.
            let full_every = app.config.scheduler.verify_full_every;
            app.run_periodic_verify(every, full_every, std::future::pending())
                .await
        })
    });
    let served = crate::api::serve(app.clone(), listener, crate::api::shutdown_signal()).await;
    let _ = stop_scheduler.send(());
    let _ = stop_watcher.send(());
    if let Some(verifier) = verifier {
        verifier.abort();
    }
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    app.events.flush(super::EVENTS_FLUSH).await;
    served.map_err(|e| AppError::Internal(e.into()))
}

/// The node of the watcher and of the sender must be on EVM_CHAIN_ID: a
/// wrong chain stops the start; an unreachable node is only warned of
/// (both retry, and check before they read or sign anything).
async fn check_chain(app: &crate::services::App) -> AppResult<()> {
    let mut checks = Vec::new();
    if let Some(watch) = &app.watch {
        checks.push(watch.verify_chain().await);
    }
    if let Some(sender) = &app.sender {
        checks.push(sender.verify_chain().await);
    }
    for checked in checks {
        match checked {
            Ok(()) => {}
            Err(e) if e.kind == crate::chain::evm::RpcErrorKind::Refused => {
                return Err(AppError::Invalid(format!("EVM_CHAIN_ID: {e}")))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the EVM node does not answer yet; the chain's tasks retry");
            }
        }
    }
    Ok(())
}
