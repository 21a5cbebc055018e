//! Stopping cleanly. On SIGTERM or SIGINT the server stops accepting connections and ends its
//! open SSE streams (they never end by themselves), lets requests in flight finish within
//! `SHUTDOWN_TIMEOUT`, then cancels whatever is still running.

use std::future::IntoFuture;
use std::io;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long cancelled MCP streams get to send their last bytes once the deadline has passed.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// The two stages of stopping, shared by the listener and the MCP transport.
#[derive(Clone, Default)]
pub struct Shutdown {
    draining: CancellationToken,
    closing: CancellationToken,
    /// Work that must finish before the process exits: upstream child processes being ended.
    children: TaskTracker,
}

impl Shutdown {
    /// Cancelled when stopping begins: no new connections, GET streams end.
    pub fn draining(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// Cancelled when the deadline passes: every MCP session and its streams end.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Where work that must end before the process exits is tracked.
    pub fn children(&self) -> TaskTracker {
        self.children.clone()
    }

    /// Waits, at most `limit`, for the tracked work to end once the server has stopped.
    pub async fn reap(&self, limit: Duration) {
        self.closing.cancel();
        self.children.close();
        if tokio::time::timeout(limit, self.children.wait()).await.is_err() {
            tracing::warn!("some upstream processes did not stop in time");
        }
    }

    /// Begins stopping, as a signal does.
    pub fn begin(&self) {
        self.draining.cancel();
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

/// Serves `app` on `listener` until `shutdown` begins, then drains for at most `timeout`.
///
/// Every accepted connection gets TCP_NODELAY: an SSE answer leaves in several small writes,
/// and with Nagle's algorithm each later write waits for the client's delayed ACK of the first
/// (about 40 ms on Linux), once per MCP call.
pub async fn serve(listener: TcpListener, app: Router, shutdown: Shutdown, timeout: Duration) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
        }
    });
    let draining = shutdown.draining();
    let server = axum::serve(listener, app).with_graceful_shutdown(draining.clone().cancelled_owned()).into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = draining.cancelled() => {}
    }
    if let Ok(result) = tokio::time::timeout(timeout, &mut server).await {
        return result;
    }
    tracing::warn!(timeout_secs = timeout.as_secs_f64(), "requests still running at the shutdown deadline are cancelled");
    shutdown.closing.cancel();
    let _ = tokio::time::timeout(FINAL_FLUSH, &mut server).await;
    Ok(())
}
