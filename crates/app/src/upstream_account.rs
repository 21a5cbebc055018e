//! The MCP resource server's view of a caller's upstream account, served by the login of the
//! authorization server in the same process.

use std::sync::Arc;

use async_trait::async_trait;
use mcp_oauth_domain::login::{Login, UpstreamUse};
use mcp_oauth_domain::ports::FamilyId;
use mcp_oauth_resource::ports::UpstreamAccount;
use serde_json::{Value, json};

pub struct SignedInAccount(pub Arc<Login>);

fn reason(error: UpstreamUse) -> String {
    tracing::warn!(%error, "upstream account not usable");
    error.to_string()
}

#[async_trait]
impl UpstreamAccount for SignedInAccount {
    async fn identity(&self, family: &FamilyId) -> Result<Value, String> {
        let identity = self.0.identity(family).await.map_err(reason)?;
        Ok(json!({
            "provider": identity.provider,
            "sub": identity.upstream_subject,
            "email": identity.verified_email,
            "name": identity.name,
            "groups": identity.groups,
        }))
    }

    async fn userinfo(&self, family: &FamilyId) -> Result<Value, String> {
        self.0.userinfo(family).await.map_err(reason)
    }
}
