//! Stopping cleanly. On SIGTERM or SIGINT the server stops accepting connections and ends its
//! open SSE streams (they never end by themselves), lets requests in flight finish within
//! `SHUTDOWN_TIMEOUT`, then cancels whatever is still running.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::http::head_limits;

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

/// What one connection may take: how long its client may take to send a request's headers
/// (and so how long a kept-alive connection may wait idle for its next request), and how many
/// connections are open at once.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(10), max_connections: 4096 }
    }
}

/// Raises the soft limit on open files to the hard one, so that `MAX_CONNECTIONS` can be
/// reached; answers the limit in effect.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Serves `app` on `listener` until `shutdown` begins, then drains for at most `timeout`.
///
/// Every accepted connection gets TCP_NODELAY: an SSE answer leaves in several small writes,
/// and with Nagle's algorithm each later write waits for the client's delayed ACK of the first
/// (about 40 ms on Linux), once per MCP call. A connection over `limits.max_connections` is
/// closed at once; a client that is slow to send its headers is cut off (slowloris), while an
/// open SSE response is not: it is no longer reading headers.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    timeout: Duration,
    limits: ConnectionLimits,
) -> io::Result<()> {
    let draining = shutdown.draining();
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(head_limits::MAX_HEAD_BUFFER);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or the peer gave up: wait a moment, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = draining.cancelled() => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: MAX_CONNECTIONS are open");
            continue;
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
        }
        let service = TowerToHyperService::new(app.clone().map_request(move |mut request: axum::extract::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        }));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    if tokio::time::timeout(timeout, &mut drained).await.is_ok() {
        return Ok(());
    }
    tracing::warn!(timeout_secs = timeout.as_secs_f64(), "requests still running at the shutdown deadline are cancelled");
    shutdown.closing.cancel();
    let _ = tokio::time::timeout(FINAL_FLUSH, &mut drained).await;
    Ok(())
}
