//! Per-tool authorization (`TOOL_SCOPES`): a `tools/call` whose tool needs scopes the token
//! lacks gets 403 with an `insufficient_scope` challenge naming every scope the call needs
//! (MCP "Scope Challenge Handling"), and `tools/list` shows only the tools the token may call.
//! It runs in front of the demo server and of an upstream alike.

use std::sync::Arc;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_oauth_domain::scope::Scope;
use mcp_oauth_domain::validation::ValidatedToken;
use rmcp::model::ErrorCode;
use serde_json::Value;

use crate::edge::MAX_BODY_BYTES;
use crate::guard::{insufficient_scope, jsonrpc_error};

/// Tool names (or `*`, every tool) and the scopes they need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolScopes {
    rules: Vec<(String, Scope)>,
    every_tool: Option<Scope>,
}

impl ToolScopes {
    /// `deploy=deploy:write,*=mcp`: comma-separated `tool=scopes` (scopes space-separated).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut scopes = Self::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tool, needed) = entry.split_once('=').ok_or_else(|| format!("`{entry}` is not tool=scopes"))?;
            let needed = Scope::parse(needed.trim()).map_err(|e| format!("`{entry}`: {e}"))?;
            match tool.trim() {
                "" => return Err(format!("`{entry}` names no tool")),
                "*" => scopes.every_tool = Some(needed),
                tool => scopes.rules.push((tool.to_owned(), needed)),
            }
        }
        Ok(scopes)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.every_tool.is_none()
    }

    /// Every scope named, to check against `SCOPES`.
    pub fn all_scopes(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(_, s)| s).chain(&self.every_tool).flat_map(Scope::iter)
    }

    /// What calling `tool` needs: the `*` scopes and the tool's own.
    pub fn needed(&self, tool: &str) -> Scope {
        let own = self.rules.iter().filter(|(name, _)| name == tool).flat_map(|(_, s)| s.iter());
        let joined: Vec<&str> = self.every_tool.iter().flat_map(Scope::iter).chain(own).collect();
        Scope::parse(&joined.join(" ")).expect("joined scopes are valid")
    }
}

pub struct ToolScopeGuard {
    pub scopes: ToolScopes,
    pub resource_metadata: String,
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, jsonrpc_error(ErrorCode::INVALID_REQUEST, message)).into_response()
}

/// The `tools/call` and `tools/list` requests in a message (or batch): names called, and the
/// ids of list requests.
fn tool_requests(message: &Value) -> (Vec<String>, Vec<Value>) {
    let messages = match message {
        Value::Array(batch) => batch.iter().collect(),
        one => vec![one],
    };
    let (mut calls, mut lists) = (Vec::new(), Vec::new());
    for m in messages {
        match m.get("method").and_then(Value::as_str) {
            Some("tools/call") => calls.push(m["params"]["name"].as_str().unwrap_or_default().to_owned()),
            Some("tools/list") => lists.push(m.get("id").cloned().unwrap_or(Value::Null)),
            _ => {}
        }
    }
    (calls, lists)
}

pub async fn enforce(State(guard): State<Arc<ToolScopeGuard>>, request: Request, next: Next) -> Response {
    let Some(token) = request.extensions().get::<ValidatedToken>().cloned() else {
        return next.run(request).await;
    };
    if request.method() != Method::POST || guard.scopes.is_empty() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large");
    };
    let message: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let (calls, lists) = tool_requests(&message);
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(method) = header("mcp-method")
        && message.get("method").and_then(Value::as_str).is_some_and(|m| m != method)
    {
        return refuse(StatusCode::BAD_REQUEST, "the Mcp-Method header does not match the request");
    }
    if let Some(name) = header("mcp-name")
        && calls.len() == 1
        && calls[0] != name
    {
        return refuse(StatusCode::BAD_REQUEST, "the Mcp-Name header does not match the tool called");
    }
    let missing: Vec<Scope> =
        calls.iter().map(|tool| guard.scopes.needed(tool)).filter(|s| !s.is_subset_of(&token.scope)).collect();
    if !missing.is_empty() {
        let needed: Vec<&str> = missing.iter().flat_map(Scope::iter).collect();
        let needed = Scope::parse(&needed.join(" ")).expect("valid scopes");
        tracing::info!(subject = %token.subject, %needed, "tool call refused: insufficient scope");
        return insufficient_scope(&guard.resource_metadata, &needed, &format!("this tool needs the scope {needed}"));
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    if lists.is_empty() {
        return response;
    }
    filter_tool_lists(response, &lists, &guard.scopes, &token.scope).await
}

/// Removes from `tools/list` answers (JSON or SSE) the tools `granted` does not cover.
async fn filter_tool_lists(response: Response, ids: &[Value], scopes: &ToolScopes, granted: &Scope) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return refuse(StatusCode::BAD_GATEWAY, "the tool list is too large");
    };
    let filter = |message: &mut Value| {
        if ids.contains(message.get("id").unwrap_or(&Value::Null))
            && let Some(tools) = message.pointer_mut("/result/tools").and_then(Value::as_array_mut)
        {
            tools.retain(|tool| scopes.needed(tool["name"].as_str().unwrap_or_default()).is_subset_of(granted));
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let rewritten = if text.trim_start().starts_with('{') {
        let mut message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        filter(&mut message);
        message.to_string()
    } else {
        let lines: Vec<String> = text
            .split('\n')
            .map(|line| match line.strip_prefix("data:").map(|d| serde_json::from_str::<Value>(d.trim())) {
                Some(Ok(mut message)) => {
                    filter(&mut message);
                    format!("data: {message}")
                }
                _ => line.to_owned(),
            })
            .collect();
        lines.join("\n")
    };
    let mut response = Response::from_parts(parts, Body::from(Bytes::from(rewritten)));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_scopes_parse_and_combine_with_the_every_tool_rule() {
        let scopes = ToolScopes::parse("deploy=deploy:write, *=mcp").unwrap();
        assert_eq!(scopes.needed("deploy").to_string(), "deploy:write mcp");
        assert_eq!(scopes.needed("echo").to_string(), "mcp");
        assert!(ToolScopes::parse("deploy").is_err());
        assert!(ToolScopes::parse("=mcp").is_err());
        assert!(ToolScopes::parse("").unwrap().is_empty());
    }
}
