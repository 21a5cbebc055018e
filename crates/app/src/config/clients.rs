//! Where clients come from: `REGISTRATION` (what dynamic registration may do), `CLIENTS_FILE`
//! (clients configured at start), and Client ID Metadata Documents (`CIMD_*`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use mcp_oauth_adapters::documents::{FetchSettings, parse_roots};
use mcp_oauth_domain::client::{Client, RegistrationRequest};
use mcp_oauth_domain::identity::ClientId;
use mcp_oauth_domain::metadata_document::{CacheBounds, HostPolicy};
use mcp_oauth_domain::scope::Scope;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::RegistrationPolicy;
use serde::Deserialize;

use super::{Secret, parse_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RegistrationMode {
    /// Dynamic registration open to anyone, and metadata documents.
    Open,
    /// Metadata documents only; /register answers 403.
    Cimd,
    /// Dynamic registration with the initial access token REGISTRATION_TOKEN, and metadata
    /// documents.
    Token,
    /// Only the clients in CLIENTS_FILE.
    Closed,
}

#[derive(Debug, Clone, Args)]
pub struct ClientsConfig {
    /// open, cimd, token or closed.
    #[arg(long, env = "REGISTRATION", value_enum, default_value = "open")]
    pub registration: RegistrationMode,

    /// The initial access token /register requires when REGISTRATION=token.
    #[arg(long, env = "REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<Secret>,

    /// Clients configured at start: a TOML or JSON file (by its extension) of `clients`.
    #[arg(long, env = "CLIENTS_FILE")]
    pub clients_file: Option<PathBuf>,

    /// A registered client unused this long is deleted (never while it holds live tokens).
    #[arg(long, env = "CLIENT_IDLE_TTL", default_value = "30d", value_parser = parse_duration)]
    pub client_idle_ttl: Duration,

    /// Hosts (and `*.domain` suffixes) that may serve metadata documents; unset: any.
    #[arg(long, env = "CIMD_ALLOWED_HOSTS", default_value = "")]
    pub cimd_allowed_hosts: String,

    /// Hosts (and `*.domain` suffixes) that may never serve metadata documents.
    #[arg(long, env = "CIMD_DENIED_HOSTS", default_value = "")]
    pub cimd_denied_hosts: String,

    /// Fetch metadata documents from private, loopback and link-local addresses too.
    #[arg(long, env = "CIMD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub cimd_allow_private_networks: bool,

    /// PEM certificates trusted for metadata document hosts besides the public roots.
    #[arg(long, env = "CIMD_CA_CERT")]
    pub cimd_ca_cert: Option<PathBuf>,

    /// Longest a fetched document is reused, whatever its host allows.
    #[arg(long, env = "CIMD_CACHE_TTL", default_value = "1d", value_parser = parse_duration)]
    pub cimd_cache_ttl: Duration,

    /// Shortest a fetched document is reused (unless its host says no-store).
    #[arg(long, env = "CIMD_CACHE_MIN_TTL", default_value = "1m", value_parser = parse_duration)]
    pub cimd_cache_min_ttl: Duration,

    /// How long past its freshness a document may stand in while its host is unreachable.
    #[arg(long, env = "CIMD_STALE_TTL", default_value = "1h", value_parser = parse_duration)]
    pub cimd_stale_ttl: Duration,

    /// Bound on one document fetch, connection and answer together.
    #[arg(long, env = "CIMD_FETCH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub cimd_fetch_timeout: Duration,
}

/// The parsed form of [`ClientsConfig`].
#[derive(Debug, Clone)]
pub struct ClientsSetup {
    pub registration: RegistrationPolicy,
    pub configured: Vec<Client>,
    pub hosts: HostPolicy,
    pub bounds: CacheBounds,
    pub idle_ttl: Duration,
    pub fetch: FetchSettings,
}

/// One client of `CLIENTS_FILE`: its id, its secret's SHA-256 (hex) if confidential, and the
/// metadata a registration would carry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfiguredClient {
    client_id: String,
    client_secret_sha256: Option<String>,
    #[serde(flatten)]
    metadata: RegistrationRequest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    clients: Vec<ConfiguredClient>,
}

fn read_clients(path: &PathBuf, scopes: &Scope) -> Result<Vec<Client>, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("CLIENTS_FILE `{name}` cannot be read: {e}"))?;
    let file: ClientsFile = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("CLIENTS_FILE `{name}`: {e}"))?
    } else {
        toml::from_str(&text).map_err(|e| format!("CLIENTS_FILE `{name}`: {e}"))?
    };
    let mut clients: Vec<Client> = Vec::new();
    for entry in file.clients {
        let id = entry.client_id;
        let invalid = |why: String| format!("CLIENTS_FILE `{name}`, client `{id}`: {why}");
        if id.is_empty() || id.len() > 255 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("client_id must be 1 to 255 visible characters".into()));
        }
        if id.starts_with("https://") {
            return Err(invalid("an https URL client_id names a metadata document; list its host in CIMD_ALLOWED_HOSTS".into()));
        }
        if clients.iter().any(|c| c.client_id.as_str() == id) {
            return Err(invalid("listed twice".into()));
        }
        let metadata = entry.metadata.validate(scopes).map_err(|e| invalid(e.description.into_owned()))?;
        let secret_digest = match (&entry.client_secret_sha256, metadata.token_endpoint_auth_method.is_confidential()) {
            (Some(hex), true) => {
                Some(TokenDigest::from_hex(hex).ok_or_else(|| invalid("client_secret_sha256 is not 64 hex digits".into()))?)
            }
            (None, false) => None,
            (None, true) => return Err(invalid("a confidential client needs client_secret_sha256".into())),
            (Some(_), false) => return Err(invalid("a public client (`none`) has no secret".into())),
        };
        clients.push(Client {
            client_id: ClientId::from(id.as_str()),
            secret_digest,
            metadata,
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            expires_at: DateTime::<Utc>::MAX_UTC,
        });
    }
    Ok(clients)
}

impl ClientsConfig {
    pub fn setup(&self, scopes: &Scope) -> Result<ClientsSetup, String> {
        let registration = match (self.registration, &self.registration_token) {
            (RegistrationMode::Open, _) => RegistrationPolicy::Open,
            (RegistrationMode::Cimd, _) => RegistrationPolicy::Cimd,
            (RegistrationMode::Closed, _) => RegistrationPolicy::Closed,
            (RegistrationMode::Token, Some(token)) if token.expose().len() >= 16 => {
                RegistrationPolicy::Token(TokenDigest::of(token.expose()))
            }
            (RegistrationMode::Token, _) => {
                return Err("REGISTRATION=token needs REGISTRATION_TOKEN, at least 16 characters".into());
            }
        };
        let configured = match &self.clients_file {
            Some(path) => read_clients(path, scopes)?,
            None => Vec::new(),
        };
        if registration == RegistrationPolicy::Closed && configured.is_empty() {
            return Err("REGISTRATION=closed admits only the clients of CLIENTS_FILE, and it lists none".into());
        }
        if self.cimd_cache_min_ttl > self.cimd_cache_ttl {
            return Err("CIMD_CACHE_MIN_TTL must not be longer than CIMD_CACHE_TTL".into());
        }
        if self.client_idle_ttl.is_zero() || self.cimd_fetch_timeout.is_zero() {
            return Err("CLIENT_IDLE_TTL and CIMD_FETCH_TIMEOUT must be positive".into());
        }
        let extra_roots = match &self.cimd_ca_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("CIMD_CA_CERT `{}` cannot be read: {e}", path.display()))?;
                parse_roots(&pem).map_err(|e| format!("CIMD_CA_CERT `{}`: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(ClientsSetup {
            registration,
            configured,
            hosts: HostPolicy::parse(&self.cimd_allowed_hosts, &self.cimd_denied_hosts)
                .map_err(|e| format!("CIMD_ALLOWED_HOSTS / CIMD_DENIED_HOSTS: {e}"))?,
            bounds: CacheBounds { min: self.cimd_cache_min_ttl, max: self.cimd_cache_ttl, stale: self.cimd_stale_ttl },
            idle_ttl: self.client_idle_ttl,
            fetch: FetchSettings {
                timeout: self.cimd_fetch_timeout,
                allow_private_networks: self.cimd_allow_private_networks,
                extra_roots,
            },
        })
    }
}
