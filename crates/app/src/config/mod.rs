//! Configuration: every setting is an environment variable and a command-line flag.

mod clients;
mod login;

use std::time::Duration;

use clap::{Parser, ValueEnum};
use mcp_oauth_domain::rate_limit::Quota;
use mcp_oauth_domain::resource::{Issuer, ResourceUri};
use mcp_oauth_domain::scope::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AuthMode {
    /// The authorization server and the MCP resource server in one process.
    Internal,
    /// The authorization server alone, issuing tokens for RESOURCES.
    AuthServer,
    /// The MCP resource server alone, trusting the authorization server at AUTH_SERVER_URL.
    External,
}

impl AuthMode {
    /// The name AUTH_MODE gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::AuthServer => "auth_server",
            Self::External => "external",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum TokenValidation {
    /// RFC 7662 introspection at the authorization server.
    Introspection,
    /// RFC 9068 JWT access tokens, verified with the provider's JWKS.
    Jwt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum IntrospectionAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum UpstreamIdentityMode {
    /// A short-lived ES256 JWT, verifiable with /.well-known/jwks.json.
    Jwt,
    /// X-MCP-Subject, X-MCP-Client-Id, X-MCP-Scope, for an upstream only this server reaches.
    Headers,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Runs the authorization server on port 3001 and the MCP server on port 3232 in one
    /// process, talking to each other over HTTP as in a split deployment.
    Split,
    /// Operates a running server through its admin API (ADMIN_ADDR, ADMIN_TOKEN).
    Admin(crate::admin::cli::AdminArgs),
}

#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-oauth-server", version, about = "OAuth 2.1 authorization server and MCP resource server")]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Port to listen on: 3232, or 3001 in auth_server mode.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// Address to bind.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Public base URI; it is the issuer exactly, and the MCP resource is BASE_URI/mcp.
    /// Defaults to http://localhost:PORT.
    #[arg(long, env = "BASE_URI")]
    pub base_uri: Option<String>,

    /// Where state is kept: `memory`, `redis://…`, `rediss://…` (TLS) or
    /// `sqlite://path/to/file.db`. Unset: REDIS_URL if set, else memory.
    #[arg(long, env = "STORAGE_URL")]
    pub storage_url: Option<ConnectionUrl>,

    /// Selects Redis when STORAGE_URL is unset, as in the reference deployment.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<ConnectionUrl>,

    /// Redis password, used when the URL carries none.
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<Secret>,

    /// A PEM file of certificates to trust for rediss://, besides the public roots (a private CA).
    #[arg(long, env = "REDIS_CA_CERT")]
    pub redis_ca_cert: Option<std::path::PathBuf>,

    /// Prefix of every Redis key.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "auth:")]
    pub redis_key_prefix: String,

    /// Bound on every storage operation; past it the request gets 503.
    #[arg(long, env = "STORAGE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub storage_timeout: Duration,

    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "internal")]
    pub auth_mode: AuthMode,

    /// auth_server mode: comma-separated resources tokens may be issued for (their `aud`).
    #[arg(long, env = "RESOURCES", value_delimiter = ',', default_value = "http://localhost:3232/mcp")]
    pub resources: Vec<String>,

    /// external mode: the authorization server's issuer URL.
    #[arg(long, env = "AUTH_SERVER_URL")]
    pub auth_server_url: Option<String>,

    /// external mode: how tokens are validated.
    #[arg(long, env = "TOKEN_VALIDATION", value_enum, default_value = "introspection")]
    pub token_validation: TokenValidation,

    /// external mode: overrides the introspection endpoint found by discovery.
    #[arg(long, env = "INTROSPECTION_URL", value_parser = parse_http_url)]
    pub introspection_url: Option<url::Url>,

    /// external mode: how to authenticate to the introspection endpoint.
    #[arg(long, env = "INTROSPECTION_AUTH_METHOD", value_enum, default_value = "client_secret_basic")]
    pub introspection_auth_method: IntrospectionAuthMethod,

    /// external mode: longest time an introspection answer is reused, which bounds how long a
    /// revocation takes to be seen.
    #[arg(long, env = "INTROSPECTION_CACHE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub introspection_cache_ttl: Duration,

    /// external mode (jwt): overrides the jwks_uri found by discovery.
    #[arg(long, env = "JWKS_URL", value_parser = parse_http_url)]
    pub jwks_url: Option<url::Url>,

    /// external mode (jwt): an unknown key id refetches the JWKS at most this often.
    #[arg(long, env = "JWKS_REFRESH_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub jwks_refresh_interval: Duration,

    /// external mode (jwt): accepted `typ` header values, when a token has one.
    #[arg(long, env = "JWT_TYP", value_delimiter = ',', default_value = "at+jwt,application/at+jwt")]
    pub jwt_typ: Vec<String>,

    /// Access-token lifetime: plain seconds or with a unit (30s, 10m, 1h, 1d).
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    pub access_token_ttl: Duration,

    /// How long a retry of a just-rotated refresh token gets the same successor; 0 turns it off.
    #[arg(long, env = "REFRESH_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub refresh_grace: Duration,

    /// Space-separated scopes clients may request.
    #[arg(long, env = "SCOPES", default_value = "mcp")]
    pub scopes: String,

    /// Client id with which a resource server authenticates to /introspect (in external mode:
    /// the credential this server sends).
    #[arg(long, env = "INTROSPECTION_CLIENT_ID", requires = "introspection_client_secret")]
    pub introspection_client_id: Option<String>,

    /// Its secret.
    #[arg(long, env = "INTROSPECTION_CLIENT_SECRET", hide_env_values = true, requires = "introspection_client_id")]
    pub introspection_client_secret: Option<Secret>,

    /// An MCP session unused this long is closed; its id then answers 404.
    #[arg(long, env = "MCP_SESSION_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub mcp_session_idle_timeout: Duration,

    /// How long an instance keeps the worker of an unused MCP session (about 60-70 KB each)
    /// with no stream open and no resource subscription: past it the worker is released and the
    /// session, still in storage, is restored on its next request (about 0.1 ms more than a
    /// request on a held worker, README Benchmarks). At most MCP_SESSION_IDLE_TIMEOUT.
    #[arg(long, env = "MCP_SESSION_WORKER_IDLE", default_value = "1m", value_parser = parse_duration)]
    pub mcp_session_worker_idle: Duration,

    /// How often a subscribed resource reports notifications/resources/updated.
    #[arg(long, env = "RESOURCE_UPDATE_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub resource_update_interval: Duration,

    /// Comma-separated browser origins allowed to call /mcp (e.g. https://app.example);
    /// requests with another Origin get 403. Empty: the Origin header is not checked.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,

    /// Comma-separated browser origins CORS answers for (browser-based MCP clients, such as the
    /// Inspector's web UI). Empty: any origin. Credentials are never allowed either way.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// On SIGTERM or SIGINT, how long requests in flight may take to finish before they are
    /// cancelled.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long a client may take to send a request's headers; also how long a kept-alive
    /// connection may wait idle for its next request. Open SSE streams are not cut by it.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a client may take to send a request's body.
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// Connections open at once; more are closed on arrival. Lowered to fit the open-file limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed for
    /// rate limits; from anyone else the header is ignored.
    #[arg(long, env = "TRUST_PROXY", default_value = "")]
    pub trust_proxy: String,

    /// Requests per client address to /register (`60/1m`; `off` for none).
    #[arg(long, env = "RATE_LIMIT_REGISTER", default_value = "60/1m")]
    pub rate_limit_register: String,

    /// Registrations per client address over a longer window, bounding what one address can
    /// make the server keep (each registration is kept 30 days).
    #[arg(long, env = "REGISTRATION_QUOTA", default_value = "100/1h")]
    pub registration_quota: String,

    /// Registered clients that may live at once (each is kept 30 days): a registration past
    /// it gets 503 `temporarily_unavailable`, whatever the address. Bounds the memory clients
    /// take (at most about 40 KB each, at every field's limit).
    #[arg(long, env = "MAX_CLIENTS", default_value_t = 10_000)]
    pub max_clients: u32,

    /// Authorization requests per client address that may wait for consent (each is kept 10
    /// minutes), counted on GET /authorize.
    #[arg(long, env = "PENDING_AUTHORIZATION_QUOTA", default_value = "60/10m")]
    pub pending_authorization_quota: String,

    /// Live MCP sessions one user may hold through one client. A new session past it is
    /// refused (429, a JSON-RPC error), rather than an older one closed.
    #[arg(long, env = "MAX_SESSIONS_PER_USER", default_value_t = 100)]
    pub max_sessions_per_user: u32,

    /// Streams one MCP session may hold open on an instance at once (its GET stream and the
    /// streams of its requests in flight); the next request on it is refused (429).
    #[arg(long, env = "MAX_STREAMS_PER_SESSION", default_value_t = 32)]
    pub max_streams_per_session: usize,

    /// Requests per client address to /authorize and the consent post.
    #[arg(long, env = "RATE_LIMIT_AUTHORIZE", default_value = "100/15m")]
    pub rate_limit_authorize: String,

    /// Requests per client address to /token.
    #[arg(long, env = "RATE_LIMIT_TOKEN", default_value = "300/5s")]
    pub rate_limit_token: String,

    /// Requests per client address to /introspect.
    #[arg(long, env = "RATE_LIMIT_INTROSPECT", default_value = "300/5s")]
    pub rate_limit_introspect: String,

    /// Requests per client address to /revoke.
    #[arg(long, env = "RATE_LIMIT_REVOKE", default_value = "50/15m")]
    pub rate_limit_revoke: String,

    /// Requests per client_id to /token, /introspect and /revoke, wherever they come from.
    #[arg(long, env = "RATE_LIMIT_CLIENT", default_value = "600/1m")]
    pub rate_limit_client: String,

    /// Failed client authentications (a wrong secret) per client_id; past it the client_id is
    /// refused until the window ends.
    #[arg(long, env = "RATE_LIMIT_CLIENT_AUTH_FAILURES", default_value = "10/15m")]
    pub rate_limit_client_auth_failures: String,

    /// Requests per client address to /mcp.
    #[arg(long, env = "RATE_LIMIT_MCP", default_value = "1200/1m")]
    pub rate_limit_mcp: String,

    /// MCP sessions one user may open through one client per window, however many they end:
    /// MAX_SESSIONS_PER_USER bounds the live ones, this bounds a loop of opening and ending.
    #[arg(long, env = "RATE_LIMIT_MCP_SESSIONS", default_value = "300/1m")]
    pub rate_limit_mcp_sessions: String,

    /// Your own MCP server over Streamable HTTP (`http://127.0.0.1:8000/mcp`): /mcp forwards
    /// to it instead of serving the demo.
    #[arg(long, env = "MCP_UPSTREAM_URL", value_parser = parse_http_url)]
    pub mcp_upstream_url: Option<url::Url>,

    /// Your own MCP server over stdio (`npx -y @modelcontextprotocol/server-everything`): one
    /// child per MCP session. Split into words like a shell would, but never run by one.
    #[arg(long, env = "MCP_UPSTREAM_COMMAND", conflicts_with = "mcp_upstream_url")]
    pub mcp_upstream_command: Option<String>,

    /// More arguments for MCP_UPSTREAM_COMMAND, unsplit: a JSON array of strings.
    #[arg(long, env = "MCP_UPSTREAM_ARGS", requires = "mcp_upstream_command")]
    pub mcp_upstream_args: Option<String>,

    /// Variables for each child, `KEY=VALUE,KEY=VALUE`, beside PATH, HOME, USER, LANG, LC_ALL,
    /// TMPDIR and TZ (nothing else of this server's environment reaches it).
    #[arg(long, env = "MCP_UPSTREAM_ENV", default_value = "", hide_env_values = true)]
    pub mcp_upstream_env: String,

    /// Upstream child processes this instance runs at once.
    #[arg(long, env = "MAX_UPSTREAM_PROCESSES", default_value_t = 64)]
    pub max_upstream_processes: usize,

    /// Upstream child processes one user may have on this instance.
    #[arg(long, env = "MAX_UPSTREAM_PROCESSES_PER_USER", default_value_t = 8)]
    pub max_upstream_processes_per_user: usize,

    /// How often a stdio session checks that it is still used and its grant not revoked.
    #[arg(long, env = "MCP_UPSTREAM_CHECK_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub mcp_upstream_check_interval: Duration,

    /// How the upstream learns the caller: a signed JWT in Authorization, or X-MCP-* headers.
    #[arg(long, env = "MCP_UPSTREAM_IDENTITY", value_enum, default_value = "jwt")]
    pub mcp_upstream_identity: UpstreamIdentityMode,

    /// Bound on connecting to the upstream and on its first byte of answer.
    #[arg(long, env = "MCP_UPSTREAM_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub mcp_upstream_timeout: Duration,

    /// Whether the demo server serves the conformance suite's fixtures (test_* tools and
    /// prompts, test://static-* resources).
    #[arg(long, env = "MCP_DEMO_FIXTURES", default_value_t = true, action = clap::ArgAction::Set)]
    pub mcp_demo_fixtures: bool,

    /// Scopes every /mcp request's token must carry; default `mcp` if SCOPES lists it,
    /// otherwise the first scope SCOPES lists.
    #[arg(long, env = "MCP_REQUIRED_SCOPES")]
    pub mcp_required_scopes: Option<String>,

    /// Scopes each tool needs: `deploy=deploy:write,*=mcp` (SCOPES must list them).
    #[arg(long, env = "TOOL_SCOPES", default_value = "")]
    pub tool_scopes: String,

    /// P-256 private key (PKCS#8 PEM) that signs identity JWTs. Unset: keys are generated,
    /// rotated every SIGNING_KEY_ROTATION and shared through the storage (sealed with
    /// TOKEN_VAULT_KEY, which Redis storage then needs).
    #[arg(long, env = "SIGNING_KEY_FILE")]
    pub signing_key_file: Option<std::path::PathBuf>,

    /// How long a generated identity signing key signs before the next one takes over.
    #[arg(long, env = "SIGNING_KEY_ROTATION", default_value = "7d", value_parser = parse_duration)]
    pub signing_key_rotation: Duration,

    /// Log filter, in tracing's EnvFilter syntax. rmcp's own INFO lines name session ids, so
    /// they are left out by default.
    #[arg(long, env = "RUST_LOG", default_value = "info,rmcp=warn")]
    pub rust_log: String,

    /// With Redis, how long an instance keeps a copy of a client it looked up: a deletion on
    /// another instance reaches this one within it. `0` looks every client up in Redis.
    #[arg(long, env = "CLIENT_CACHE_TTL", default_value = "5s", value_parser = parse_duration)]
    pub client_cache_ttl: Duration,

    /// Serve `/metrics` on this address (`127.0.0.1:9090`) instead of the public listener.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// The admin API's bearer token; unset, there is no admin API. At least 32 characters.
    #[arg(long, env = "ADMIN_TOKEN")]
    pub admin_token: Option<Secret>,

    /// Where the admin API listens (and where `admin` commands call it).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:3239")]
    pub admin_addr: std::net::SocketAddr,

    /// Where the audit trail goes, one JSON object a line: `stdout` or a file path (appended).
    /// Unset: audit events are only in the ordinary log.
    #[arg(long, env = "AUDIT_LOG")]
    pub audit_log: Option<String>,

    /// Log each span as it closes, with its time: the request, the OAuth step
    /// (`oauth.token`…), each storage call (`storage`) and call to another server
    /// (`outbound`). Those below the request are at debug level: use with RUST_LOG=debug.
    #[arg(long, env = "LOG_SPANS", default_value_t = false, action = clap::ArgAction::Set)]
    pub log_spans: bool,

    /// `text` (for people) or `json` (one object a line, for log collectors).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub login: LoginConfig,

    #[command(flatten)]
    pub clients: ClientsConfig,
}

pub use clients::{ClientsConfig, ClientsSetup, RegistrationMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
pub use login::{LoginConfig, LoginKind, LoginSetup};

/// A secret setting: shown as `***` by `Debug`, so configuration can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A connection URL that may carry a password: `Debug` masks the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ConnectionUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::str::FromStr for ConnectionUrl {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl std::fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                write!(f, "{url}")
            }
            Ok(_) => f.write_str(&self.0),
            Err(_) => f.write_str("<not a URL>"),
        }
    }
}

/// An absolute http(s) URL with a host.
pub fn parse_http_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{raw}` must be an http(s) URL"));
    }
    Ok(url)
}

/// A browser origin: scheme, host and optional port, nothing else (`https://app.example`).
/// `:*` for any port is kept as rmcp accepts it.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let checked = raw.strip_suffix(":*").unwrap_or(raw);
    let url = url::Url::parse(checked).map_err(|e| format!("`{raw}` is not an origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.path() != "/" || url.query().is_some() {
        return Err(format!("`{raw}` is not an origin like https://app.example"));
    }
    if url.as_str().trim_end_matches('/') != checked.to_ascii_lowercase().trim_end_matches('/') {
        return Err(format!("`{raw}` is not an origin like https://app.example"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Accepts `30`, `30s`, `10m`, `1h` or `1d`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let value: u64 = digits.parse().map_err(|_| format!("`{raw}` is not a duration like 30, 30s, 10m or 1h"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!("unknown unit `{unit}` in `{raw}`; use s, m, h or d"));
        }
    };
    value.checked_mul(seconds).map(Duration::from_secs).ok_or_else(|| format!("`{raw}` is too long"))
}

impl Config {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.auth_mode == AuthMode::AuthServer { 3001 } else { 3232 })
    }

    /// The storage URL in effect: STORAGE_URL, else REDIS_URL, else `memory`.
    pub fn storage(&self) -> &str {
        self.storage_url.as_ref().or(self.redis_url.as_ref()).map_or("memory", ConnectionUrl::as_str).trim()
    }
}

/// Where state is kept, parsed from the storage URL once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    Memory,
    /// A `redis://` or `rediss://` URL.
    #[cfg(feature = "redis")]
    Redis(String),
    /// A `sqlite:` URL naming a database file (or `:memory:`, for tests).
    #[cfg(feature = "sqlite")]
    Sqlite(String),
}

impl StorageUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "memory" {
            return Ok(Self::Memory);
        }
        if raw.starts_with("redis://") || raw.starts_with("rediss://") {
            #[cfg(feature = "redis")]
            return Ok(Self::Redis(raw.to_owned()));
            #[cfg(not(feature = "redis"))]
            return Err("STORAGE_URL names Redis, but this build has no Redis support (the `redis` feature)".into());
        }
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            return Self::sqlite(raw, rest);
        }
        Err("STORAGE_URL must be `memory`, a redis:// or rediss:// URL, or a sqlite:// URL".into())
    }

    #[cfg(feature = "sqlite")]
    fn sqlite(raw: &str, rest: &str) -> Result<Self, String> {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.split('?').next().unwrap_or_default().is_empty() {
            return Err(format!("STORAGE_URL `{raw}` names no database file; use sqlite://path/to/file.db"));
        }
        Ok(Self::Sqlite(raw.to_owned()))
    }

    #[cfg(not(feature = "sqlite"))]
    fn sqlite(_raw: &str, _rest: &str) -> Result<Self, String> {
        Err("STORAGE_URL names SQLite, but this build has no SQLite support (the `sqlite` feature)".into())
    }

    /// Whether what is stored is gone when the process restarts.
    pub fn forgets_on_restart(&self) -> bool {
        matches!(self, Self::Memory)
    }

    /// The backend's name, as the home page and the logs show it.
    /// Whether other instances share this storage (and so the MCP sessions and signing keys).
    pub fn is_shared(&self) -> bool {
        #[cfg(feature = "redis")]
        if matches!(self, Self::Redis(_)) {
            return true;
        }
        false
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            #[cfg(feature = "redis")]
            Self::Redis(_) => "redis",
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// The configuration, validated once at start-up: what the command line and the environment
/// said (`config`, each value already typed by its parser), and what is derived from it.
/// Everything after start-up reads settings, never the raw configuration again.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// This server's own identifier: the issuer (internal, auth_server modes), and the base of
    /// its MCP resource.
    pub issuer: Issuer,
    /// This server's MCP resource, `BASE_URI/mcp`.
    pub resource: ResourceUri,
    /// The resources tokens are issued for (internal: just `resource`).
    pub resources: Vec<ResourceUri>,
    pub scopes: Scope,
    /// external mode: the authorization server trusted for tokens.
    pub auth_server: Option<url::Url>,
    pub storage: StorageUrl,
    /// How users sign in (internal and auth_server modes).
    pub login: LoginSetup,
    /// `TOKEN_VAULT_KEY`, parsed once: it seals what must be recovered from storage (upstream
    /// tokens, the shared identity signing keys).
    pub vault_key: Option<mcp_oauth_domain::login::VaultKey>,
    /// The user's own MCP server behind /mcp; `None` serves the demo server.
    pub upstream: Option<McpUpstream>,
    /// What every /mcp token must carry (`MCP_REQUIRED_SCOPES`).
    pub required_scopes: Scope,
    pub rate_limits: RateLimitSettings,
    pub tool_scopes: mcp_oauth_resource::tool_scopes::ToolScopes,
    /// Where clients come from (internal and auth_server modes).
    pub clients: ClientsSetup,
}

/// The quota of each limited endpoint (`None`: off), and whose forwarding headers to believe.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub trusted: crate::http::rate_limit::TrustedProxies,
    pub register: Option<Quota>,
    pub registration_quota: Option<Quota>,
    pub pending_authorization_quota: Option<Quota>,
    pub authorize: Option<Quota>,
    pub token: Option<Quota>,
    pub introspect: Option<Quota>,
    pub revoke: Option<Quota>,
    pub mcp: Option<Quota>,
    pub mcp_sessions: Option<Quota>,
    pub client: Option<Quota>,
    pub client_auth_failures: Option<Quota>,
}

impl RateLimitSettings {
    fn parse(config: &Config) -> Result<Self, String> {
        let quota = |name: &str, raw: &str| Quota::parse(raw).map_err(|e| format!("{name}: {e}"));
        Ok(Self {
            trusted: crate::http::rate_limit::TrustedProxies::parse(&config.trust_proxy)?,
            register: quota("RATE_LIMIT_REGISTER", &config.rate_limit_register)?,
            registration_quota: quota("REGISTRATION_QUOTA", &config.registration_quota)?,
            pending_authorization_quota: quota("PENDING_AUTHORIZATION_QUOTA", &config.pending_authorization_quota)?,
            authorize: quota("RATE_LIMIT_AUTHORIZE", &config.rate_limit_authorize)?,
            token: quota("RATE_LIMIT_TOKEN", &config.rate_limit_token)?,
            introspect: quota("RATE_LIMIT_INTROSPECT", &config.rate_limit_introspect)?,
            revoke: quota("RATE_LIMIT_REVOKE", &config.rate_limit_revoke)?,
            mcp: quota("RATE_LIMIT_MCP", &config.rate_limit_mcp)?,
            mcp_sessions: quota("RATE_LIMIT_MCP_SESSIONS", &config.rate_limit_mcp_sessions)?,
            client: quota("RATE_LIMIT_CLIENT", &config.rate_limit_client)?,
            client_auth_failures: quota("RATE_LIMIT_CLIENT_AUTH_FAILURES", &config.rate_limit_client_auth_failures)?,
        })
    }
}

/// The user's own MCP server behind /mcp.
#[derive(Debug, Clone)]
pub enum McpUpstream {
    /// `MCP_UPSTREAM_URL`: Streamable HTTP, told the caller by `identity`.
    Http { url: url::Url, identity: CallerIdentitySetup },
    /// `MCP_UPSTREAM_COMMAND`: one child process per session, told the caller in its environment.
    Stdio(mcp_oauth_resource::gateway::stdio::UpstreamCommand),
}

/// How an HTTP upstream learns the caller.
#[derive(Debug, Clone)]
pub enum CallerIdentitySetup {
    /// Signed JWTs: with `SIGNING_KEY_FILE`'s key, or (`None`) keys shared through storage.
    Jwt(Option<mcp_oauth_resource::gateway::identity::SigningKey>),
    Headers,
}

impl McpUpstream {
    /// Whether this server signs identity JWTs for it, verified with `/.well-known/jwks.json`.
    pub fn signs_identities(&self) -> bool {
        matches!(self, McpUpstream::Http { identity: CallerIdentitySetup::Jwt(_), .. })
    }
}

impl Settings {
    pub fn parse(config: Config) -> Result<Settings, String> {
        let base = config.base_uri.clone().unwrap_or_else(|| format!("http://localhost:{}", config.port()));
        let issuer = Issuer::parse(&base).map_err(|e| format!("BASE_URI: {e}"))?;
        let resource = ResourceUri::parse(&issuer.endpoint("/mcp")).map_err(|e| format!("BASE_URI: {e}"))?;
        let scopes = Scope::parse(&config.scopes).map_err(|e| format!("SCOPES: {e}"))?;
        if scopes.is_empty() {
            return Err("SCOPES must name at least one scope".into());
        }
        if config.header_read_timeout.is_zero() || config.body_read_timeout.is_zero() || config.max_connections == 0 {
            return Err("HEADER_READ_TIMEOUT, BODY_READ_TIMEOUT and MAX_CONNECTIONS must be positive".into());
        }
        if config.admin_token.as_ref().is_some_and(|token| token.expose().trim().len() < 32) {
            return Err("ADMIN_TOKEN must be at least 32 characters (openssl rand -hex 32 makes one)".into());
        }
        if config.access_token_ttl.is_zero() {
            return Err("ACCESS_TOKEN_TTL must be positive".into());
        }
        if config.mcp_session_idle_timeout.is_zero()
            || config.mcp_session_worker_idle.is_zero()
            || config.resource_update_interval.is_zero()
        {
            return Err("MCP_SESSION_IDLE_TIMEOUT, MCP_SESSION_WORKER_IDLE and RESOURCE_UPDATE_INTERVAL must be positive".into());
        }
        let resources = match config.auth_mode {
            AuthMode::AuthServer => config
                .resources
                .iter()
                .filter(|r| !r.trim().is_empty())
                .map(|r| ResourceUri::parse(r.trim()).map_err(|e| format!("RESOURCES: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![resource.clone()],
        };
        if resources.is_empty() {
            return Err("RESOURCES must name at least one resource".into());
        }
        let auth_server = match (config.auth_mode, &config.auth_server_url) {
            (AuthMode::External, None) => {
                return Err("AUTH_SERVER_URL is required in external mode".into());
            }
            (AuthMode::External, Some(raw)) => {
                let url = url::Url::parse(raw).map_err(|e| format!("AUTH_SERVER_URL `{raw}` is not a URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(format!("AUTH_SERVER_URL `{raw}` must be an http(s) URL"));
                }
                Some(url)
            }
            _ => None,
        };
        if config.auth_mode == AuthMode::External
            && config.token_validation == TokenValidation::Introspection
            && config.introspection_client_id.is_none()
        {
            return Err("external mode with introspection needs INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET".into());
        }
        let storage = StorageUrl::parse(config.storage())?;
        let loopback = url::Url::parse(issuer.as_str()).is_ok_and(|url| mcp_oauth_domain::redirect_uri::is_loopback(&url));
        let login = match config.auth_mode {
            AuthMode::External => LoginSetup::Dev { exposed: false },
            _ => config.login.setup(&issuer, loopback)?,
        };
        let vault_key = match (&login, &config.login.token_vault_key) {
            (LoginSetup::Upstream { key, .. }, _) => Some(key.clone()),
            (LoginSetup::Dev { .. }, Some(raw)) => {
                Some(mcp_oauth_domain::login::VaultKey::parse(raw.expose()).map_err(|e| e.to_string())?)
            }
            (LoginSetup::Dev { .. }, None) => None,
        };
        let upstream = match (&config.mcp_upstream_url, &config.mcp_upstream_command, config.auth_mode) {
            (Some(_), Some(_), _) => return Err("set MCP_UPSTREAM_URL or MCP_UPSTREAM_COMMAND, not both".into()),
            (Some(_), _, AuthMode::AuthServer) | (_, Some(_), AuthMode::AuthServer) => {
                return Err("MCP_UPSTREAM_URL and MCP_UPSTREAM_COMMAND have no effect in auth_server mode".into());
            }
            (Some(url), None, _) => {
                Some(McpUpstream::Http { url: url.clone(), identity: caller_identity(&config, &storage, vault_key.is_some())? })
            }
            (None, Some(line), _) => {
                let command = mcp_oauth_resource::gateway::stdio::UpstreamCommand::parse(
                    line,
                    config.mcp_upstream_args.as_deref(),
                    &config.mcp_upstream_env,
                )?;
                if config.max_upstream_processes == 0 || config.max_upstream_processes_per_user == 0 {
                    return Err("MAX_UPSTREAM_PROCESSES and MAX_UPSTREAM_PROCESSES_PER_USER must be positive".into());
                }
                if config.mcp_upstream_check_interval.is_zero() {
                    return Err("MCP_UPSTREAM_CHECK_INTERVAL must be positive".into());
                }
                Some(McpUpstream::Stdio(command))
            }
            (None, None, _) => None,
        };
        let required_scopes = match &config.mcp_required_scopes {
            Some(raw) => Scope::parse(raw).map_err(|e| format!("MCP_REQUIRED_SCOPES: {e}"))?,
            None if scopes.contains("mcp") => Scope::parse("mcp").expect("a valid scope"),
            None => Scope::parse(scopes.iter().next().expect("SCOPES is not empty")).expect("a listed scope"),
        };
        if let Some(unknown) = required_scopes.iter().find(|s| !scopes.contains(s)) {
            return Err(format!("MCP_REQUIRED_SCOPES names `{unknown}`, which SCOPES does not list"));
        }
        let tool_scopes =
            mcp_oauth_resource::tool_scopes::ToolScopes::parse(&config.tool_scopes).map_err(|e| format!("TOOL_SCOPES: {e}"))?;
        if let Some(unknown) = tool_scopes.all_scopes().find(|s| !scopes.contains(s)) {
            return Err(format!("TOOL_SCOPES names `{unknown}`, which SCOPES does not list"));
        }
        let rate_limits = RateLimitSettings::parse(&config)?;
        let clients = config.clients.setup(&scopes)?;
        Ok(Settings {
            clients,
            rate_limits,
            issuer,
            resource,
            resources,
            scopes,
            auth_server,
            storage,
            login,
            vault_key,
            upstream,
            required_scopes,
            tool_scopes,
            config,
        })
    }
}

fn caller_identity(config: &Config, storage: &StorageUrl, has_vault_key: bool) -> Result<CallerIdentitySetup, String> {
    use mcp_oauth_resource::gateway::identity::SigningKey;
    Ok(match config.mcp_upstream_identity {
        UpstreamIdentityMode::Headers => CallerIdentitySetup::Headers,
        UpstreamIdentityMode::Jwt => match &config.signing_key_file {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("SIGNING_KEY_FILE `{}` cannot be read: {e}", path.display()))?;
                CallerIdentitySetup::Jwt(Some(SigningKey::from_pem(&pem).map_err(|e| format!("SIGNING_KEY_FILE: {e}"))?))
            }
            None => {
                if storage.is_shared() && !has_vault_key {
                    return Err("identity JWTs on shared storage need SIGNING_KEY_FILE, or TOKEN_VAULT_KEY to keep the \
                                shared signing keys sealed"
                        .into());
                }
                if config.signing_key_rotation < std::time::Duration::from_secs(3600) {
                    return Err("SIGNING_KEY_ROTATION must be at least 1h".into());
                }
                CallerIdentitySetup::Jwt(None)
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn base_uri_defaults_to_localhost_on_the_port_and_loses_its_trailing_slash() {
        assert_eq!(Config::parse_from(["x", "--auth-mode", "auth_server"]).port(), 3001);
        assert_eq!(Config::parse_from(["x"]).port(), 3232);
        let config = Config::parse_from(["x", "--port", "4000"]);
        assert_eq!(Settings::parse(config.clone()).unwrap().issuer.as_str(), "http://localhost:4000");
        // A public BASE_URI needs LOGIN (see `login_is_required_where_others_can_reach_the_server`).
        let config = Config::parse_from(["x", "--base-uri", "https://mcp.example/", "--login", "dev"]);
        let settings = Settings::parse(config.clone()).unwrap();
        assert_eq!(settings.issuer.as_str(), "https://mcp.example");
        assert_eq!(settings.resource.as_str(), "https://mcp.example/mcp");
    }

    #[test]
    fn login_is_required_where_others_can_reach_the_server() {
        let public = ["x", "--base-uri", "https://mcp.example"];
        let error = Settings::parse(Config::parse_from(public)).unwrap_err();
        assert!(error.contains("LOGIN must be set"), "{error}");
        let dev = Settings::parse(Config::parse_from([&public[..], &["--login", "dev"]].concat())).unwrap();
        assert!(matches!(dev.login, LoginSetup::Dev { exposed: true }));
        let local = Settings::parse(Config::parse_from(["x"])).unwrap();
        assert!(matches!(local.login, LoginSetup::Dev { exposed: false }), "loopback defaults to dev");

        let oidc = [
            &public[..],
            &["--login", "oidc", "--upstream-issuer", "https://idp.example", "--upstream-client-id", "c"],
            &["--upstream-client-secret", "upstream-secret-value"],
        ]
        .concat();
        let error = Settings::parse(Config::parse_from(&oidc)).unwrap_err();
        assert!(error.contains("TOKEN_VAULT_KEY is required"), "{error}");
        let bad_key = [&oidc[..], &["--token-vault-key", "short"]].concat();
        assert!(Settings::parse(Config::parse_from(&bad_key)).unwrap_err().contains("32 bytes"));
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let good = [&oidc[..], &["--token-vault-key", key]].concat();
        let settings = Settings::parse(Config::parse_from(&good)).unwrap();
        let LoginSetup::Upstream { upstream, .. } = &settings.login else { panic!("an upstream login") };
        assert_eq!(upstream.redirect_uri.as_str(), "https://mcp.example/login/callback");
        assert_eq!(upstream.scopes, "openid email profile");
        let shown = format!("{settings:?}");
        assert!(!shown.contains(key) && !shown.contains("upstream-secret-value"), "secrets are redacted: {shown}");

        let github = [&public[..], &["--login", "github", "--upstream-client-id", "c", "--token-vault-key", key]].concat();
        assert!(Settings::parse(Config::parse_from(&github)).unwrap_err().contains("UPSTREAM_CLIENT_SECRET"));
        let groups = [&good[..], &["--allowed-groups", "staff"]].concat();
        assert!(Settings::parse(Config::parse_from(&groups)).unwrap_err().contains("UPSTREAM_GROUPS_CLAIM"));
    }
}

#[cfg(test)]
mod mode_tests {
    use super::*;

    #[test]
    fn a_vault_key_is_parsed_once_and_a_malformed_one_refused_with_the_development_login_too() {
        let bad = Settings::parse(Config::parse_from(["x", "--token-vault-key", "short"])).unwrap_err();
        assert!(bad.contains("TOKEN_VAULT_KEY"), "{bad}");
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        assert!(Settings::parse(Config::parse_from(["x", "--token-vault-key", key])).unwrap().vault_key.is_some());
        assert!(Settings::parse(Config::parse_from(["x"])).unwrap().vault_key.is_none());
    }

    #[test]
    fn external_mode_needs_a_url_for_its_authorization_server() {
        let missing = Settings::parse(Config::parse_from(["x", "--auth-mode", "external"])).unwrap_err();
        assert!(missing.contains("AUTH_SERVER_URL is required"), "{missing}");
        let bad =
            Settings::parse(Config::parse_from(["x", "--auth-mode", "external", "--auth-server-url", "not a url"])).unwrap_err();
        assert!(bad.contains("not a URL"), "{bad}");
        let ok = Config::parse_from([
            "x",
            "--auth-mode",
            "external",
            "--auth-server-url",
            "http://localhost:3001",
            "--introspection-client-id",
            "rs",
            "--introspection-client-secret",
            "s",
        ]);
        assert!(Settings::parse(ok.clone()).is_ok());
    }

    #[test]
    fn the_authorization_server_issues_for_configured_resources() {
        let config =
            Config::parse_from(["x", "--auth-mode", "auth_server", "--resources", "http://a:1/mcp,https://b.example/mcp"]);
        let settings = Settings::parse(config.clone()).unwrap();
        assert_eq!(settings.resources.len(), 2);
        assert_eq!(settings.issuer.as_str(), "http://localhost:3001");
    }
}

#[cfg(test)]
mod storage_tests {
    use super::*;

    #[test]
    fn storage_url_wins_then_redis_url_then_memory() {
        assert_eq!(Config::parse_from(["x"]).storage(), "memory");
        assert_eq!(Config::parse_from(["x", "--redis-url", "redis://r:6379"]).storage(), "redis://r:6379");
        let both = Config::parse_from(["x", "--redis-url", "redis://r:6379", "--storage-url", "sqlite://a.db"]);
        assert_eq!(both.storage(), "sqlite://a.db");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = Config::parse_from([
            "x",
            "--redis-url",
            "redis://:url-password@r:6379",
            "--redis-password",
            "redis-password",
            "--introspection-client-id",
            "rs",
            "--introspection-client-secret",
            "introspection-secret",
        ]);
        let shown = format!("{config:?}");
        for secret in ["url-password", "redis-password", "introspection-secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("redis://:***@r:6379"), "{shown}");
        assert_eq!(config.introspection_client_secret.unwrap().expose(), "introspection-secret");
    }

    #[test]
    fn storage_urls_that_name_nothing_usable_are_refused() {
        assert_eq!(StorageUrl::parse("memory"), Ok(StorageUrl::Memory));
        assert_eq!(StorageUrl::parse("sqlite://a.db"), Ok(StorageUrl::Sqlite("sqlite://a.db".into())));
        assert_eq!(StorageUrl::parse("sqlite::memory:"), Ok(StorageUrl::Sqlite("sqlite::memory:".into())));
        for bad in ["sqlite://", "sqlite:", "sqlite://?mode=rwc", "postgres://x", "memroy", ""] {
            assert!(StorageUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(parse_origin("https://app.example").unwrap(), "https://app.example");
        assert_eq!(parse_origin("http://localhost:6274/").unwrap(), "http://localhost:6274");
        assert_eq!(parse_origin("http://localhost:*").unwrap(), "http://localhost:*");
        for bad in ["app.example", "https://app.example/cb", "https://app.example?x=1", "javascript:alert(1)", "https://"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert!(parse_http_url("https://as.example/introspect").is_ok());
        assert!(parse_http_url("mailto:x@y").is_err());
    }
}
