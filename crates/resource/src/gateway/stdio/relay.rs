//! A session whose child runs on another instance: this instance restores a copy of the
//! session (rmcp's transport still answers the client here) and relays its messages over the
//! session bus to the instance running the child. If that instance does not answer, it is
//! gone, and so is the session: requests get a JSON-RPC error and the session ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ClientNotification, JsonRpcNotification, RequestId, ServerJsonRpcMessage, ServerResult};
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::manager::Upstream;
use super::pump::{End, InFlight, Origin, failure};
use crate::ports::SessionBus;
use crate::transport::bus::{BusMessage, InstanceTag};
use crate::transport::outbox::OutboxTransport;

/// How long the instance running a child gets to answer before it counts as gone.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
const HOST_GONE: &str = "the instance running this session's upstream MCP process is gone; start a new session";

/// What the instance running a session's child and the instances relaying to it tell each
/// other. `from` and `to` name instances.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Relay {
    /// Is this session's child running on some instance?
    Attach {
        session: String,
        from: String,
    },
    Attached {
        session: String,
        to: String,
    },
    /// A client message for the child.
    In {
        session: String,
        from: String,
        message: ClientJsonRpcMessage,
    },
    /// The child has the request `id`.
    Ack {
        session: String,
        to: String,
        id: RequestId,
    },
    /// A child message for a client whose request came through `to`.
    Out {
        session: String,
        to: String,
        message: ServerJsonRpcMessage,
    },
    /// The child is gone and so is the session.
    Gone {
        session: String,
        reason: String,
    },
}

impl Relay {
    fn session(&self) -> &str {
        match self {
            Relay::Attach { session, .. }
            | Relay::Attached { session, .. }
            | Relay::In { session, .. }
            | Relay::Ack { session, .. }
            | Relay::Out { session, .. }
            | Relay::Gone { session, .. } => session,
        }
    }

    /// What the log says of it: the step and the request id, never the message's content.
    fn step(&self) -> String {
        let id = |message: Option<RequestId>| message.map(|id| format!(" {id}")).unwrap_or_default();
        match self {
            Relay::Attach { .. } => "attach".into(),
            Relay::Attached { .. } => "attached".into(),
            Relay::In { message, .. } => format!("in{}", id(client_id(message))),
            Relay::Ack { id: acked, .. } => format!("ack {acked}"),
            Relay::Out { message, .. } => format!("out{}", id(server_id(message))),
            Relay::Gone { .. } => "gone".into(),
        }
    }

    /// Whether this instance should act on it: not its own, and not addressed to another.
    fn concerns(&self, instance: &str) -> bool {
        match self {
            Relay::Attach { from, .. } | Relay::In { from, .. } => from != instance,
            Relay::Attached { to, .. } | Relay::Ack { to, .. } | Relay::Out { to, .. } => to == instance,
            Relay::Gone { .. } => true,
        }
    }
}

fn client_id(message: &ClientJsonRpcMessage) -> Option<RequestId> {
    match message {
        ClientJsonRpcMessage::Request(request) => Some(request.id.clone()),
        ClientJsonRpcMessage::Response(response) => Some(response.id.clone()),
        ClientJsonRpcMessage::Error(error) => error.id.clone(),
        ClientJsonRpcMessage::Notification(_) => None,
    }
}

fn server_id(message: &ServerJsonRpcMessage) -> Option<RequestId> {
    match message {
        ServerJsonRpcMessage::Request(request) => Some(request.id.clone()),
        ServerJsonRpcMessage::Response(response) => Some(response.id.clone()),
        ServerJsonRpcMessage::Error(error) => error.id.clone(),
        ServerJsonRpcMessage::Notification(_) => None,
    }
}

/// A short digest of a session id for the log: the id itself is not written out.
pub(super) fn log_tag(session: &str) -> String {
    mcp_oauth_domain::secret::TokenDigest::of(session).to_hex()[..12].to_owned()
}

/// This instance's end of the relays: one bus listener handing each session's messages to the
/// pump or relay serving that session here.
pub(super) struct Relays {
    pub(super) instance: String,
    bus: Arc<dyn SessionBus>,
    routes: DashMap<String, mpsc::UnboundedSender<Relay>>,
}

impl Relays {
    pub(super) fn start(bus: Arc<dyn SessionBus>) -> Arc<Self> {
        let instance = InstanceTag::generate().as_str().to_owned();
        let relays = Arc::new(Self { instance, bus, routes: DashMap::new() });
        let (listening, mut payloads) = (Arc::downgrade(&relays), relays.bus.listen());
        tokio::spawn(async move {
            while let Some(payload) = payloads.next().await {
                let Some(relays) = listening.upgrade() else { return };
                let Ok(BusMessage::Stdio { relay }) = serde_json::from_str::<BusMessage>(&payload) else { continue };
                if !relay.concerns(&relays.instance) {
                    continue;
                }
                match relays.routes.get(relay.session()) {
                    Some(route) => {
                        tracing::debug!(session = %log_tag(relay.session()), step = %relay.step(), "stdio relay received");
                        let _ = route.send(relay);
                    }
                    None => {
                        tracing::debug!(session = %log_tag(relay.session()), step = %relay.step(), "stdio relay for no session here")
                    }
                }
            }
        });
        relays
    }

    pub(super) fn register(&self, session: &str) -> mpsc::UnboundedReceiver<Relay> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.routes.insert(session.to_owned(), sender);
        receiver
    }

    pub(super) fn unregister(&self, session: &str) {
        self.routes.remove(session);
    }

    pub(super) async fn publish(&self, relay: Relay) {
        tracing::debug!(session = %log_tag(relay.session()), step = %relay.step(), "stdio relay sent");
        let payload = match serde_json::to_string(&BusMessage::Stdio { relay }) {
            Ok(payload) => payload,
            Err(error) => return tracing::warn!(%error, "stdio relay message not serialisable"),
        };
        if let Err(error) = self.bus.publish(payload).await {
            tracing::warn!(%error, "stdio relay publish failed");
        }
    }
}

/// This instance's copy of a session whose child runs elsewhere.
pub(super) struct RelayPump {
    upstream: Arc<Upstream>,
    session: String,
    transport: OutboxTransport,
    ended: CancellationToken,
    in_flight: InFlight,
    /// Requests relayed whose arrival the child's instance has not confirmed, with deadlines.
    unconfirmed: VecDeque<(RequestId, Instant)>,
}

impl RelayPump {
    pub(super) fn new(upstream: Arc<Upstream>, session: String, transport: OutboxTransport, ended: CancellationToken) -> Self {
        Self { upstream, session, transport, ended, in_flight: InFlight::default(), unconfirmed: VecDeque::new() }
    }

    pub(super) async fn run(mut self) {
        let _ghost = self.ended.clone().drop_guard();
        let mut events = self.upstream.relays.register(&self.session);
        let end = self.relay(&mut events).await;
        self.upstream.relays.unregister(&self.session);
        let reason = match end {
            None => HOST_GONE,
            Some(end) => end.reason(),
        };
        let over = !matches!(end, Some(End::Closed | End::Shutdown));
        if over {
            // Ended in the shared record first, so that no new request reaches this copy.
            tracing::warn!(reason, "a relayed stdio session ended");
            let _ = self.upstream.backend.sessions.end(&self.session).await;
        }
        for (_, error) in self.in_flight.fail_all(reason) {
            let _ = self.transport.send(error).await;
        }
        if over {
            self.drain(reason).await;
            let _ = self.upstream.routed.close_session(&SessionId::from(self.session.as_str())).await;
        }
    }

    /// Relays until the session ends; `None`: the child's instance is gone.
    async fn relay(&mut self, events: &mut mpsc::UnboundedReceiver<Relay>) -> Option<End> {
        // rmcp restores a copy by replaying `initialize`; the child had it long ago, so it is
        // answered here once the child's instance is known to be there.
        let Some(ClientJsonRpcMessage::Request(initialize)) = self.transport.receive().await else {
            return Some(End::Closed);
        };
        let from = self.upstream.relays.instance.clone();
        self.upstream.relays.publish(Relay::Attach { session: self.session.clone(), from: from.clone() }).await;
        let attached = tokio::time::timeout(ANSWER_WAIT, async {
            while let Some(event) = events.recv().await {
                if matches!(event, Relay::Attached { .. }) {
                    return true;
                }
            }
            false
        });
        let present = attached.await.unwrap_or(false);
        let _ = self.transport.send(ServerJsonRpcMessage::response(ServerResult::empty(()), initialize.id)).await;
        if !present {
            tracing::warn!(session = %log_tag(&self.session), "no instance answered for this session's upstream MCP process");
            return None;
        }
        let mut tick = tokio::time::interval(self.upstream.settings.check_interval);
        tick.reset();
        loop {
            let deadline = self.unconfirmed.front().map(|(_, at)| *at);
            tokio::select! {
                message = self.transport.receive() => match message {
                    None => return Some(End::Closed),
                    Some(ClientJsonRpcMessage::Notification(JsonRpcNotification {
                        notification: ClientNotification::InitializedNotification(_), ..
                    })) => {}
                    Some(message) => {
                        if let ClientJsonRpcMessage::Request(request) = &message {
                            self.unconfirmed.push_back((request.id.clone(), Instant::now() + ANSWER_WAIT));
                        }
                        self.in_flight.sent(&message, Origin::Here);
                        self.upstream.relays.publish(Relay::In { session: self.session.clone(), from: from.clone(), message }).await;
                    }
                },
                Some(event) = events.recv() => match event {
                    Relay::Out { mut message, .. } => {
                        self.in_flight.route(&mut message);
                        let _ = self.transport.send(message).await;
                    }
                    Relay::Ack { id, .. } => self.unconfirmed.retain(|(pending, _)| *pending != id),
                    // The child's instance has failed its requests and closes the session everywhere.
                    Relay::Gone { .. } => return Some(End::Closed),
                    _ => {}
                },
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let id = self.unconfirmed.front().map(|(id, _)| id.to_string()).unwrap_or_default();
                    tracing::warn!(session = %log_tag(&self.session), id, "the instance running this session's upstream MCP process did not confirm a request");
                    return None;
                }
                _ = tick.tick() => if let Ok(None) = self.upstream.backend.sessions.load_state(&self.session).await {
                    return Some(End::Expired);
                },
                () = self.upstream.closing.cancelled() => return Some(End::Shutdown),
            }
        }
    }

    /// Answers what already reached this copy before it closes: a request that arrived with
    /// the restore would otherwise wait for nothing.
    async fn drain(&mut self, reason: &str) {
        while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), self.transport.receive()).await {
            if let ClientJsonRpcMessage::Request(request) = message {
                let _ = self.transport.send(failure(request.id, reason)).await;
            }
        }
    }
}
