//! Shutdown signals: SIGINT (Ctrl-C) or SIGTERM (`docker stop`, systemd) cancel the root token.

use tokio_util::sync::CancellationToken;

/// Cancels `token` when SIGINT or SIGTERM arrives.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C stops the daemon.");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
        () = token.cancelled() => return,
    }
    tracing::info!("Shutting down.");
    token.cancel();
}
