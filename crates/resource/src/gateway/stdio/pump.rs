//! A session whose child runs on this instance: messages from the client (here, or relayed
//! from another instance) go to the child unchanged, and the child's go back to the stream or
//! the instance that waits for them.

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::validation::ValidatedToken;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ErrorData, GetExtensions, GetMeta, JsonRpcNotification, ProgressToken, RequestId,
    ServerJsonRpcMessage, ServerNotification,
};
use rmcp::service::OriginatingRequestId;
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager};
use rmcp::transport::{TokioChildProcess, Transport};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::limits::{ProcessPermit, Refusal};
use super::manager::Upstream;
use super::relay::Relay;
use crate::gateway::UPSTREAM_FAILED;
use crate::guard::{PresentedToken, UNAVAILABLE};
use crate::transport::outbox::OutboxTransport;

/// How long a stopping child gets between closing its stdin, SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Where the client that sent a request waits for its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    Here,
    /// Another instance, relaying.
    There(String),
}

/// Requests the client sent that the child has not answered, oldest first.
#[derive(Default)]
pub(super) struct InFlight(Vec<(RequestId, Origin, Option<ProgressToken>)>);

impl InFlight {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn sent(&mut self, message: &ClientJsonRpcMessage, origin: Origin) {
        match message {
            ClientJsonRpcMessage::Request(request) => {
                let progress = request.request.get_meta().get_progress_token();
                self.0.push((request.id.clone(), origin, progress));
            }
            // A cancelled request gets no answer.
            ClientJsonRpcMessage::Notification(JsonRpcNotification {
                notification: ClientNotification::CancelledNotification(cancelled),
                ..
            }) => {
                if let Some(id) = &cancelled.params.request_id {
                    self.0.retain(|(pending, _, _)| pending != id);
                }
            }
            _ => {}
        }
    }

    /// Where `message` from the child goes; an answer leaves the list.
    pub(super) fn route(&mut self, message: &mut ServerJsonRpcMessage) -> Origin {
        let answered = match message {
            ServerJsonRpcMessage::Response(response) => Some(response.id.clone()),
            ServerJsonRpcMessage::Error(error) => error.id.clone(),
            ServerJsonRpcMessage::Notification(JsonRpcNotification {
                notification: ServerNotification::ProgressNotification(progress),
                ..
            }) => {
                let token = &progress.params.progress_token;
                return self.0.iter().find(|(_, _, t)| t.as_ref() == Some(token)).map_or(Origin::Here, |(_, o, _)| o.clone());
            }
            ServerJsonRpcMessage::Request(request) => {
                // A child on stdio cannot say which request it asks about: the latest the client
                // is waiting on is the likeliest, and its stream is open.
                let Some((id, origin, _)) = self.0.last() else { return Origin::Here };
                request.request.extensions_mut().insert(OriginatingRequestId(id.clone()));
                return origin.clone();
            }
            ServerJsonRpcMessage::Notification(_) => return Origin::Here,
        };
        let Some(id) = answered else { return Origin::Here };
        match self.0.iter().position(|(pending, _, _)| *pending == id) {
            Some(at) => self.0.remove(at).1,
            None => Origin::Here,
        }
    }

    /// Errors for every request still waiting, with where each goes.
    pub(super) fn fail_all(&mut self, reason: &str) -> Vec<(Origin, ServerJsonRpcMessage)> {
        self.0.drain(..).map(|(id, origin, _)| (origin, failure(id, reason))).collect()
    }
}

pub(super) fn failure(id: RequestId, reason: &str) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::error(ErrorData::new(UPSTREAM_FAILED, reason.to_owned(), None), Some(id))
}

/// Why a session's child stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Closed by the client (DELETE) or on another instance.
    Closed,
    Crashed,
    Expired,
    Revoked,
    /// Ended to make room for a newer session of the same user.
    Evicted,
    Shutdown,
}

impl End {
    pub(super) fn reason(self) -> &'static str {
        match self {
            End::Closed => "the session ended",
            End::Crashed => "the upstream MCP server process exited; start a new session",
            End::Expired => "the session expired",
            End::Revoked => "the session's authorization was revoked",
            End::Evicted => "the session was ended to make room for a newer one of the same user",
            End::Shutdown => "the server is stopping",
        }
    }
}

pub(super) struct Pump {
    upstream: Arc<Upstream>,
    session: String,
    /// A short digest of the session id for the log: the id itself is not written out.
    tag: String,
    transport: OutboxTransport,
    ended: CancellationToken,
    in_flight: InFlight,
    /// The latest token the owner presented here, to check that its grant still holds.
    presented: Option<TokenDigest>,
}

fn caller_of(message: &ClientJsonRpcMessage) -> Option<(ValidatedToken, Option<TokenDigest>)> {
    let ClientJsonRpcMessage::Request(request) = message else { return None };
    let parts = request.request.extensions().get::<axum::http::request::Parts>()?;
    let caller = parts.extensions.get::<ValidatedToken>()?.clone();
    Some((caller, parts.extensions.get::<PresentedToken>().map(|p| p.0)))
}

impl Pump {
    pub(super) fn new(upstream: Arc<Upstream>, session: String, transport: OutboxTransport, ended: CancellationToken) -> Self {
        let tag = super::relay::log_tag(&session);
        Self { upstream, session, tag, transport, ended, in_flight: InFlight::default(), presented: None }
    }

    pub(super) async fn run(mut self) {
        let _ghost = self.ended.clone().drop_guard();
        let Some(initialize) = self.transport.receive().await else { return };
        let Some((mut child, permit)) = self.start(&initialize).await else {
            self.close().await;
            return;
        };
        // Should this task be dropped before it stops the child (a runtime shutting down), the
        // child's group is still killed.
        let _group = GroupGuard(child.id());
        let mut relayed = self.upstream.relays.register(&self.session);
        self.in_flight.sent(&initialize, Origin::Here);
        let end = match child.send(initialize).await {
            Ok(()) => self.serve(&mut child, &mut relayed, &permit).await,
            Err(_) => End::Crashed,
        };
        self.upstream.relays.unregister(&self.session);
        self.finish(end, child).await;
        drop(permit);
    }

    /// Starts the child for the caller of `initialize`, or answers why not.
    async fn start(&mut self, initialize: &ClientJsonRpcMessage) -> Option<(TokioChildProcess, ProcessPermit)> {
        let ClientJsonRpcMessage::Request(request) = initialize else { return None };
        let id = request.id.clone();
        let Some((caller, presented)) = caller_of(initialize) else {
            let _ = self.transport.send(failure(id, "no caller")).await;
            return None;
        };
        self.presented = presented;
        let permit = match self.upstream.limits.acquire(&caller.subject).await {
            Ok(permit) => permit,
            Err(refusal) => {
                let message = match refusal {
                    Refusal::Total(n) => format!("this server runs at most {n} upstream MCP processes at once; retry later"),
                    Refusal::User(n) => format!("you already have {n} upstream MCP sessions; end one (DELETE) first"),
                };
                tracing::warn!(session = %self.tag, subject = %caller.subject, running = self.upstream.limits.running(), "{message}");
                let error = ServerJsonRpcMessage::error(ErrorData::new(UNAVAILABLE, message, None), Some(id));
                let _ = self.transport.send(error).await;
                return None;
            }
        };
        let (child, stderr) = match self.upstream.settings.command.spawn(&caller) {
            Ok(spawned) => spawned,
            Err(error) => {
                tracing::error!(session = %self.tag, program = %self.upstream.settings.command.program, %error, "the upstream MCP server cannot be started");
                let _ = self.transport.send(failure(id, "the upstream MCP server could not be started")).await;
                return None;
            }
        };
        tracing::info!(session = %self.tag, subject = %caller.subject, pid = child.id(), "upstream MCP process started");
        let tag = self.tag.clone();
        tokio::spawn(async move {
            let Some(stderr) = stderr else { return };
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "mcp_upstream", session = %tag, "{line}");
            }
        });
        Some((child, permit))
    }

    async fn serve(
        &mut self,
        child: &mut TokioChildProcess,
        relayed: &mut tokio::sync::mpsc::UnboundedReceiver<Relay>,
        permit: &ProcessPermit,
    ) -> End {
        let mut tick = tokio::time::interval(self.upstream.settings.check_interval);
        tick.reset();
        loop {
            permit.activity.set_busy(!self.in_flight.is_empty());
            tokio::select! {
                message = self.transport.receive() => match message {
                    // At shutdown rmcp closes every session too: that is not the client's end.
                    None if self.upstream.closing.is_cancelled() => return End::Shutdown,
                    None => return End::Closed,
                    Some(message) => {
                        if let Some((_, Some(presented))) = caller_of(&message) {
                            self.presented = Some(presented);
                        }
                        self.in_flight.sent(&message, Origin::Here);
                        if child.send(message).await.is_err() {
                            return End::Crashed;
                        }
                    }
                },
                message = child.receive() => match message {
                    None => return End::Crashed,
                    Some(mut message) => {
                        let origin = self.in_flight.route(&mut message);
                        self.deliver(origin, message).await;
                    }
                },
                Some(relay) = relayed.recv() => match relay {
                    Relay::Attach { from, .. } => self.upstream.relays.publish(Relay::Attached { session: self.session.clone(), to: from }).await,
                    Relay::In { from, message, .. } => {
                        if let ClientJsonRpcMessage::Request(request) = &message {
                            let ack = Relay::Ack { session: self.session.clone(), to: from.clone(), id: request.id.clone() };
                            self.upstream.relays.publish(ack).await;
                        }
                        self.in_flight.sent(&message, Origin::There(from));
                        if child.send(message).await.is_err() {
                            return End::Crashed;
                        }
                    }
                    _ => {}
                },
                _ = tick.tick() => if let Some(end) = self.check().await {
                    return end;
                },
                () = permit.activity.evicted.cancelled() => return End::Evicted,
                () = self.upstream.closing.cancelled() => return End::Shutdown,
            }
        }
    }

    /// Whether the session is still in use and its owner's grant still holds.
    async fn check(&self) -> Option<End> {
        if let Ok(None) = self.upstream.backend.sessions.load_state(&self.session).await {
            return Some(End::Expired);
        }
        let (Some(grants), Some(presented)) = (&self.upstream.settings.grants, &self.presented) else { return None };
        match grants.is_live(presented).await {
            Ok(false) => Some(End::Revoked),
            _ => None,
        }
    }

    async fn deliver(&mut self, origin: Origin, message: ServerJsonRpcMessage) {
        match origin {
            Origin::Here => {
                if let Err(error) = self.transport.send(message).await {
                    tracing::debug!(session = %self.tag, %error, "a message from the upstream found no stream");
                }
            }
            Origin::There(to) => {
                self.upstream.relays.publish(Relay::Out { session: self.session.clone(), to, message }).await;
            }
        }
    }

    async fn finish(mut self, end: End, child: TokioChildProcess) {
        let reason = end.reason();
        for (origin, error) in self.in_flight.fail_all(reason) {
            self.deliver(origin, error).await;
        }
        self.upstream.relays.publish(Relay::Gone { session: self.session.clone(), reason: reason.to_owned() }).await;
        let status = stop(child, end != End::Shutdown).await;
        match end {
            End::Crashed => tracing::warn!(session = %self.tag, ?status, "upstream MCP process exited; its session ended"),
            _ => tracing::info!(session = %self.tag, reason, "upstream MCP process stopped"),
        }
        if end != End::Closed {
            self.close().await;
        }
    }

    /// Ends the session everywhere: its record, and this instance's copy.
    async fn close(&self) {
        let _ = self.upstream.backend.sessions.end(&self.session).await;
        let _ = self.upstream.routed.close_session(&SessionId::from(self.session.as_str())).await;
    }
}

/// Stops a child and everything it started (its process group): stdin closed first, as the
/// MCP stdio transport asks, then SIGTERM, then SIGKILL. `patient`: give it time to exit.
async fn stop(child: TokioChildProcess, patient: bool) -> Option<std::process::ExitStatus> {
    let group = child.id();
    let mut process = child.into_inner()?;
    let grace = if patient { STOP_GRACE } else { Duration::from_millis(200) };
    let mut status = tokio::time::timeout(grace, process.wait()).await.ok().and_then(Result::ok);
    if status.is_none() {
        signal_group(group, libc::SIGTERM);
        status = tokio::time::timeout(grace, process.wait()).await.ok().and_then(Result::ok);
    }
    // Whatever the child started and left behind goes with it.
    signal_group(group, libc::SIGKILL);
    if status.is_none() {
        status = process.wait().await.ok();
    }
    status
}

/// Kills a child's process group when dropped.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

fn signal_group(group: Option<u32>, signal: libc::c_int) {
    let Some(group) = group.and_then(|g| libc::pid_t::try_from(g).ok()) else { return };
    // SAFETY: killpg only sends a signal; the group is the child's own (it leads it).
    unsafe {
        libc::killpg(group, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(value: serde_json::Value) -> ClientJsonRpcMessage {
        serde_json::from_value(value).unwrap()
    }

    fn server(value: serde_json::Value) -> ServerJsonRpcMessage {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn answers_progress_and_questions_go_where_their_request_came_from() {
        let mut in_flight = InFlight::default();
        in_flight.sent(&client(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})), Origin::Here);
        let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "x", "_meta": {"progressToken": "p"}}});
        in_flight.sent(&client(call), Origin::There("b".into()));
        let mut progress = server(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": "p", "progress": 1}}));
        assert_eq!(in_flight.route(&mut progress), Origin::There("b".into()));
        let mut question = server(serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}));
        assert_eq!(in_flight.route(&mut question), Origin::There("b".into()), "the latest request's instance");
        let mut answer = server(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}));
        assert_eq!(in_flight.route(&mut answer), Origin::Here);
        assert_eq!(in_flight.route(&mut answer), Origin::Here, "an answer nobody waits for stays here");
        let cancelled = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}});
        in_flight.sent(&client(cancelled), Origin::Here);
        assert!(in_flight.fail_all("gone").is_empty(), "a cancelled request is no longer waited for");
    }
}
