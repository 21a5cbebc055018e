//! What instances tell each other about the sessions they share, and how ids of requests to
//! the client are tagged with the instance that sent them.

use rmcp::model::{ClientJsonRpcMessage, JsonRpcNotification, RequestId, ServerJsonRpcMessage, ServerNotification};
use serde::{Deserialize, Serialize};

use mcp_oauth_domain::secret::{TokenDigest, generate_secret};

/// What instances tell each other about the sessions they share.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum BusMessage {
    /// A client-to-server message (a response to a server request, a notification) that
    /// arrived at `origin`; the copy of the session that awaits it may live elsewhere.
    Inbox { session: String, origin: String, message: ClientJsonRpcMessage },
    /// A notification tied to no request, for whichever instance holds the client's GET stream.
    Outbox { session: String, message: ServerJsonRpcMessage },
    /// The session ended at `origin`: close every other copy.
    Close { session: String, origin: String },
    /// Between the instance running a session's stdio upstream and the instances relaying to it.
    Stdio { relay: crate::gateway::stdio::relay::Relay },
}

/// Notifications about no particular request travel on the GET stream, wherever it is open.
pub(super) fn unscoped(message: &ServerJsonRpcMessage) -> bool {
    matches!(
        message,
        ServerJsonRpcMessage::Notification(JsonRpcNotification {
            notification: ServerNotification::ResourceUpdatedNotification(_)
                | ServerNotification::ResourceListChangedNotification(_)
                | ServerNotification::ToolListChangedNotification(_)
                | ServerNotification::PromptListChangedNotification(_)
                | ServerNotification::LoggingMessageNotification(_),
            ..
        })
    )
}

/// Length of an instance tag: 16 hex digits.
const TAG_LEN: usize = 16;

/// Names one instance in the ids of the requests it sends to clients. Every instance holding a
/// copy of a session counts its own ids from zero, and the client's answer reaches every copy:
/// only the copy whose tag it carries may take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstanceTag(String);

impl InstanceTag {
    pub(crate) fn generate() -> Self {
        Self(TokenDigest::of(&generate_secret()).to_hex()[..TAG_LEN].to_owned())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The id a request to the client goes out with.
    pub(super) fn tag(&self, id: &RequestId) -> RequestId {
        RequestId::String(format!("{}.{id}", self.0).into())
    }

    /// This copy's own id for an answer to one of its requests; None for another copy's. An id
    /// no instance tagged passes unchanged.
    pub(super) fn untag(&self, id: &RequestId) -> Option<RequestId> {
        let RequestId::String(text) = id else { return Some(id.clone()) };
        match text.split_once('.') {
            Some((tag, original)) if tag == self.0 => Some(match original.parse::<i64>() {
                Ok(number) => RequestId::Number(number),
                Err(_) => RequestId::String(original.into()),
            }),
            Some((tag, _)) if tag.len() == TAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit()) => None,
            _ => Some(id.clone()),
        }
    }
}

#[cfg(test)]
// Log notifications are deprecated only for the 2026-07-28 revision; earlier ones carry them.
#[allow(deprecated)]
mod tests {
    use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, Notification, ProgressNotificationParam, ProgressToken};

    use super::*;

    #[test]
    fn an_answer_is_taken_only_by_the_copy_whose_tag_it_carries() {
        let (a, b) = (InstanceTag::generate(), InstanceTag::generate());
        assert_ne!(a, b);
        for id in [RequestId::Number(0), RequestId::Number(41), RequestId::String("x.y".into())] {
            let sent = a.tag(&id);
            assert_eq!(a.untag(&sent), Some(id.clone()), "{id:?} comes back to its sender");
            assert_eq!(b.untag(&sent), None, "{id:?} is ignored by another copy");
        }
        let untagged = RequestId::String("client-chosen.id".into());
        assert_eq!(b.untag(&untagged), Some(untagged.clone()), "ids no instance made pass through");
        assert_eq!(a.untag(&RequestId::Number(7)), Some(RequestId::Number(7)));
    }

    #[test]
    fn bus_messages_survive_the_wire() {
        let message: ClientJsonRpcMessage =
            serde_json::from_value(serde_json::json!({ "jsonrpc": "2.0", "id": "tag.3", "result": {} })).unwrap();
        let wire = serde_json::to_string(&BusMessage::Inbox { session: "s".into(), origin: "o".into(), message }).unwrap();
        match serde_json::from_str::<BusMessage>(&wire).unwrap() {
            BusMessage::Inbox { session, origin, .. } => assert_eq!((session.as_str(), origin.as_str()), ("s", "o")),
            _ => panic!("not an inbox message"),
        }
        let close = serde_json::to_string(&BusMessage::Close { session: "s".into(), origin: "o".into() }).unwrap();
        assert!(matches!(serde_json::from_str::<BusMessage>(&close).unwrap(), BusMessage::Close { .. }));
    }

    #[test]
    fn only_notifications_about_no_request_travel_on_the_get_stream() {
        let log = ServerJsonRpcMessage::notification(ServerNotification::LoggingMessageNotification(Notification::new(
            LoggingMessageNotificationParam::new(LoggingLevel::Info, serde_json::json!("hi")),
        )));
        assert!(unscoped(&log));
        let progress = ServerJsonRpcMessage::notification(ServerNotification::ProgressNotification(Notification::new(
            ProgressNotificationParam::new(ProgressToken(RequestId::Number(1)), 0.5),
        )));
        assert!(!unscoped(&progress), "progress belongs to its request's stream");
    }
}
