//! Wiring: configuration to stores, stores to the domain, the domain to routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono::TimeDelta;
use mcp_oauth_adapters::external::{ExternalSettings, ExternalValidator, IntrospectionAuth, ValidationMethod};
use mcp_oauth_adapters::memory::{MemoryRateLimits, MemoryStore};
use mcp_oauth_adapters::upstream::UpstreamProvider;
use mcp_oauth_domain::clock::{Clock, SystemClock};
use mcp_oauth_domain::login::{Login, LoginSettings};
use mcp_oauth_domain::ports::Lifetimes;
use mcp_oauth_domain::rate_limit::RateLimitStore;
use mcp_oauth_domain::redirect_uri::is_loopback;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::{AuthorizationServer, DocumentSource, Policy, ResourceServerCredential, Stores};
use mcp_oauth_domain::validation::{LocalTokenValidator, TokenValidator};
use mcp_oauth_resource::ResourceRoutes;
use mcp_oauth_resource::demo::{McpServer, McpSettings};
use mcp_oauth_resource::gateway::GatewaySettings;
use mcp_oauth_resource::gateway::identity::{CallerIdentity, IdentitySigner};
use mcp_oauth_resource::gateway::stdio::StdioSettings;
use mcp_oauth_resource::guard::BearerGuard;
use mcp_oauth_resource::memory::{LocalBus, MemoryMcpSessions, MemorySigningKeys};
use mcp_oauth_resource::metadata::ProtectedResource;
use mcp_oauth_resource::ports::{GrantStatus, McpSessionStore, UpstreamAccount};
use mcp_oauth_resource::transport::{self, McpBackend, ServerContext, TransportSettings};
use rmcp::ServerHandler;
use tokio::net::TcpListener;

use crate::admin::AdminApi;
use crate::config::{
    AuthMode, CallerIdentitySetup, Config, ConnectionUrl, IntrospectionAuthMethod, LoginSetup, McpUpstream, Settings, StorageUrl,
    TokenValidation,
};
use crate::http::{self, AppState};
use crate::pages::HomePage;
use crate::shutdown::Shutdown;

const SWEEP_PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Storage(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Hosts that may appear in the `Host` header of /mcp requests (DNS-rebinding protection).
fn allowed_hosts(settings: &Settings) -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(url) = url::Url::parse(settings.issuer.as_str())
        && let Some(host) = url.host_str()
    {
        hosts.push(host.trim_matches(['[', ']']).to_owned());
    }
    hosts
}

/// Everything the server keeps: the authorization server's stores, the MCP sessions and the
/// rate-limit windows.
pub struct Storage {
    pub stores: Stores,
    pub mcp: McpBackend,
    pub rate_limits: Arc<dyn RateLimitStore>,
}

/// Rate-limit windows of one process, for storage that is not shared between instances.
pub fn local_rate_limits() -> Arc<dyn RateLimitStore> {
    let windows = Arc::new(MemoryRateLimits::default());
    windows.spawn_sweeper(SWEEP_PERIOD);
    windows
}

/// MCP sessions of one process, for storage that is not shared between instances.
pub fn local_mcp_backend(settings: &Settings) -> McpBackend {
    let sessions = Arc::new(MemoryMcpSessions::new(settings.config.mcp_session_idle_timeout));
    sessions.spawn_sweeper(SWEEP_PERIOD);
    McpBackend { sessions, bus: Arc::new(LocalBus::default()), keys: Arc::new(MemorySigningKeys::default()) }
}

/// Opens the storage the settings name and starts its sweeper; every port is measured.
pub async fn open_storage(settings: &Settings) -> Result<Storage, StartupError> {
    let Storage { stores, mcp, rate_limits } = open_backend(settings).await?;
    let backend = settings.storage.backend();
    let sessions: Arc<dyn McpSessionStore> = crate::metered::Metered::new(mcp.sessions, backend);
    let mut stores = crate::metered::stores(stores, backend);
    // Rate limits are kept in Redis when it is the storage, in this process otherwise.
    let shared = backend == "redis";
    // In front of the measured store, so that storage metrics count what reaches Redis.
    if shared {
        stores = mcp_oauth_adapters::client_cache::CachedClients::wrap(stores, settings.config.client_cache_ttl);
    }
    Ok(Storage {
        stores,
        mcp: McpBackend { sessions, ..mcp },
        rate_limits: crate::metered::Metered::new(rate_limits, if shared { "redis" } else { "memory" }),
    })
}

async fn open_backend(settings: &Settings) -> Result<Storage, StartupError> {
    let stores = match settings.storage.clone() {
        #[cfg(feature = "redis")]
        StorageUrl::Redis(url) => return open_redis(&settings.config, url).await,
        StorageUrl::Memory => {
            let store = MemoryStore::new();
            store.spawn_sweeper(SWEEP_PERIOD);
            store.stores()
        }
        #[cfg(feature = "sqlite")]
        StorageUrl::Sqlite(url) => {
            let store =
                mcp_oauth_adapters::sqlite::SqliteStore::open(&url).await.map_err(|e| StartupError::Storage(e.to_string()))?;
            store.spawn_sweeper(SWEEP_PERIOD);
            tracing::info!(url, "using SQLite storage");
            store.stores()
        }
    };
    Ok(Storage { stores, mcp: local_mcp_backend(settings), rate_limits: local_rate_limits() })
}

/// Redis holds both the authorization server's state and the MCP sessions, for every instance.
#[cfg(feature = "redis")]
async fn open_redis(config: &Config, url: String) -> Result<Storage, StartupError> {
    use mcp_oauth_adapters::redis::{RedisOptions, RedisStore};
    use mcp_oauth_resource::redis::{RedisBus, RedisMcpSessions, RedisSigningKeys};
    let ca_certificate = match &config.redis_ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| StartupError::Config(format!("REDIS_CA_CERT `{}` cannot be read: {e}", path.display())))?,
        ),
        None => None,
    };
    let options = RedisOptions {
        url,
        password: config.redis_password.as_ref().map(|p| p.expose().to_owned()),
        prefix: config.redis_key_prefix.clone(),
        timeout: config.storage_timeout,
        ca_certificate,
    };
    let store = RedisStore::open(options).await.map_err(|e| StartupError::Storage(e.to_string()))?;
    tracing::info!(prefix = %config.redis_key_prefix, "using Redis storage");
    let mcp = McpBackend {
        sessions: Arc::new(RedisMcpSessions::new(store.clone(), config.mcp_session_idle_timeout)),
        bus: Arc::new(RedisBus::start(store.clone())),
        keys: Arc::new(RedisSigningKeys::new(store.clone())),
    };
    let rate_limits = Arc::new(mcp_oauth_adapters::redis::RedisRateLimits::new(store.clone()));
    Ok(Storage { stores: store.stores(), mcp, rate_limits })
}

/// Builds the whole application for a configuration over the given storage: the
/// authorization server (internal, auth_server modes), the MCP resource server (internal,
/// external modes), or both. Without an upstream, /mcp serves the demo server.
pub fn build(settings: &Settings, storage: Storage, shutdown: &Shutdown) -> Router {
    build_with(settings, storage, shutdown, None::<fn(&ServerContext) -> McpServer>)
}

/// [`build`], with `own` (when given) serving /mcp instead of the demo server: one `S` per
/// session copy, behind the same authorization.
pub fn build_with<S, F>(settings: &Settings, storage: Storage, shutdown: &Shutdown, own: Option<F>) -> Router
where
    S: ServerHandler + Send + 'static,
    F: Fn(&ServerContext) -> S + Send + Sync + 'static,
{
    build_parts(settings, storage, shutdown, own).0
}

/// [`build_with`], and what the admin API acts on.
pub fn build_parts<S, F>(settings: &Settings, storage: Storage, shutdown: &Shutdown, own: Option<F>) -> (Router, AdminApi)
where
    S: ServerHandler + Send + 'static,
    F: Fn(&ServerContext) -> S + Send + Sync + 'static,
{
    // Before any request: metric handles are kept once registered (`metric_handles`), and one
    // registered before the recorder would count nothing.
    crate::http::metrics::install();
    let Storage { stores, mcp: backend, rate_limits } = storage;
    let config = &settings.config;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let oauth = (config.auth_mode != AuthMode::External).then(|| {
        let resource_servers = match (&config.introspection_client_id, &config.introspection_client_secret) {
            (Some(id), Some(secret)) => {
                vec![ResourceServerCredential { client_id: id.as_str().into(), secret_digest: TokenDigest::of(secret.expose()) }]
            }
            _ => vec![],
        };
        let policy = Policy {
            issuer: settings.issuer.clone(),
            resources: settings.resources.clone(),
            scopes: settings.scopes.clone(),
            access_token_ttl: to_delta(config.access_token_ttl),
            refresh_grace: to_delta(config.refresh_grace),
            resource_servers,
            lifetimes: Lifetimes { client: settings.clients.idle_ttl, ..Lifetimes::default() },
            consent_ttl: config.login.consent_ttl,
            max_clients: config.max_clients,
            registration: settings.clients.registration.clone(),
            configured_clients: settings.clients.configured.clone(),
            vault_key: match &settings.login {
                LoginSetup::Upstream { key, .. } => Some(key.clone()),
                LoginSetup::Dev { .. } => None,
            },
        };
        let login = upstream_login(settings, &stores, &policy, clock.clone());
        let auth = Arc::new(with_documents(AuthorizationServer::new(stores.clone(), policy, clock.clone()), settings));
        let clients = crate::http::rate_limit::ClientLimits {
            store: rate_limits.clone(),
            requests: settings.rate_limits.client,
            failures: settings.rate_limits.client_auth_failures,
        };
        Arc::new(AppState { auth, clients, login, settings: settings.clone() })
    });
    let admin = AdminApi {
        auth: oauth.as_ref().map(|state| state.auth.clone()),
        sessions: (config.auth_mode != AuthMode::AuthServer).then(|| backend.sessions.clone()),
    };
    let resource = match config.auth_mode {
        AuthMode::AuthServer => None,
        AuthMode::Internal => {
            let validator = Arc::new(LocalTokenValidator::new(stores.access_tokens.clone(), settings.resource.clone(), clock));
            // Upstream tokens are kept by this process's authorization server, so only here can
            // MCP tools reach them.
            let upstream = oauth
                .as_ref()
                .and_then(|state| state.login.clone())
                .map(|login| Arc::new(crate::upstream_account::SignedInAccount(login)) as Arc<dyn UpstreamAccount>);
            let grants = Arc::new(IssuedGrants(stores.access_tokens.clone())) as Arc<dyn GrantStatus>;
            let named = settings.issuer.as_str().to_owned();
            Some(resource_routes(settings, validator, named, backend, rate_limits.clone(), upstream, Some(grants), shutdown, own))
        }
        AuthMode::External => {
            let issuer = settings.auth_server.clone().expect("external settings name the authorization server");
            let validator = Arc::new(ExternalValidator::new(external_settings(settings, issuer.clone())));
            let named = issuer.as_str().trim_end_matches('/').to_owned();
            Some(resource_routes(settings, validator, named, backend, rate_limits.clone(), None, None, shutdown, own))
        }
    };
    let home = Arc::new(home_page(settings));
    let edge = http::Edge {
        body_read_timeout: config.body_read_timeout,
        https: settings.issuer.as_str().starts_with("https://"),
        rate_limits,
        limits: settings.rate_limits.clone(),
        cors_origins: config.cors_origins.clone(),
        metrics_here: config.metrics_addr.is_none(),
    };
    (http::router(oauth, resource, stores.health.clone(), home, edge), admin)
}

/// The authorization server taking Client ID Metadata Documents as client ids, unless the
/// registration policy refuses them.
fn with_documents(auth: AuthorizationServer, settings: &Settings) -> AuthorizationServer {
    if !settings.clients.registration.allows_documents() {
        return auth;
    }
    match mcp_oauth_adapters::documents::HttpDocumentFetcher::new(settings.clients.fetch.clone()) {
        Ok(fetcher) => auth.with_documents(DocumentSource {
            fetcher: Arc::new(fetcher),
            hosts: settings.clients.hosts.clone(),
            bounds: settings.clients.bounds,
        }),
        Err(error) => {
            tracing::error!(%error, "Client ID Metadata Documents are off: no client to fetch them");
            auth
        }
    }
}

/// The key that seals what must be recovered from storage: TOKEN_VAULT_KEY, or one for this
/// process when the storage is not shared (settings refuse shared storage without it).
fn vault_key(settings: &Settings) -> mcp_oauth_domain::login::VaultKey {
    settings.vault_key.clone().unwrap_or_else(mcp_oauth_domain::login::VaultKey::generate)
}

/// Tokens this server issued: revoking one (or its family) removes its record, while an
/// expired one is kept until its retention ends.
struct IssuedGrants(Arc<dyn mcp_oauth_domain::ports::AccessTokenStore>);

#[async_trait::async_trait]
impl GrantStatus for IssuedGrants {
    async fn is_live(&self, token: &TokenDigest) -> Result<bool, mcp_oauth_domain::StorageError> {
        Ok(self.0.get(token).await?.is_some())
    }
}

/// The sign-in at the upstream identity provider, when LOGIN asks for one.
fn upstream_login(settings: &Settings, stores: &Stores, policy: &Policy, clock: Arc<dyn Clock>) -> Option<Arc<Login>> {
    let LoginSetup::Upstream { upstream, policy: access, session_ttl, key } = &settings.login else {
        return None;
    };
    let provider = Arc::new(UpstreamProvider::new((**upstream).clone()));
    let login_settings = LoginSettings {
        policy: access.clone(),
        session_ttl: *session_ttl,
        attempt_ttl: policy.lifetimes.pending_auth,
        key: key.clone(),
    };
    Some(Arc::new(Login::new(stores.clone(), provider, login_settings, clock)))
}

/// What `GET /` tells a visitor: the mode, the storage, and the URLs to use. Nothing secret.
fn home_page(settings: &Settings) -> HomePage {
    let config = &settings.config;
    let serves_mcp = config.auth_mode != AuthMode::AuthServer;
    let mut metadata = Vec::new();
    if config.auth_mode != AuthMode::External {
        metadata.push(("Authorization server metadata", settings.issuer.endpoint("/.well-known/oauth-authorization-server")));
    }
    if serves_mcp {
        metadata.push(("Protected resource metadata", settings.issuer.endpoint("/.well-known/oauth-protected-resource/mcp")));
    }
    HomePage {
        style: crate::pages::style(),
        title: "mcp-oauth-server",
        mcp_url: serves_mcp.then(|| settings.resource.to_string()),
        mode: config.auth_mode.name(),
        storage: settings.storage.backend(),
        metadata,
    }
}

fn external_settings(settings: &Settings, issuer: url::Url) -> ExternalSettings {
    let config = &settings.config;
    ExternalSettings {
        issuer,
        resource: settings.resource.clone(),
        method: match config.token_validation {
            TokenValidation::Introspection => ValidationMethod::Introspection,
            TokenValidation::Jwt => ValidationMethod::Jwt,
        },
        introspection_url: config.introspection_url.as_ref().map(url::Url::to_string),
        credentials: config
            .introspection_client_id
            .clone()
            .zip(config.introspection_client_secret.as_ref().map(|s| s.expose().to_owned())),
        introspection_auth: match config.introspection_auth_method {
            IntrospectionAuthMethod::ClientSecretBasic => IntrospectionAuth::ClientSecretBasic,
            IntrospectionAuthMethod::ClientSecretPost => IntrospectionAuth::ClientSecretPost,
        },
        cache_ttl: config.introspection_cache_ttl,
        jwks_url: config.jwks_url.as_ref().map(url::Url::to_string),
        jwks_refresh_interval: config.jwks_refresh_interval,
        jwt_types: config.jwt_typ.clone(),
        leeway: TimeDelta::seconds(60),
    }
}

/// `/mcp` behind its bearer guard, serving the demo MCP server or forwarding to the user's own
/// (`MCP_UPSTREAM_URL`), and its protected-resource metadata naming `authorization_server`.
#[allow(clippy::too_many_arguments)]
fn resource_routes<S, F>(
    settings: &Settings,
    validator: Arc<dyn TokenValidator>,
    authorization_server: String,
    backend: McpBackend,
    rate_limits: Arc<dyn RateLimitStore>,
    upstream: Option<Arc<dyn UpstreamAccount>>,
    grants: Option<Arc<dyn GrantStatus>>,
    shutdown: &Shutdown,
    own: Option<F>,
) -> ResourceRoutes
where
    S: ServerHandler + Send + 'static,
    F: Fn(&ServerContext) -> S + Send + Sync + 'static,
{
    let guard = BearerGuard {
        validator,
        resource_metadata: settings.issuer.endpoint("/.well-known/oauth-protected-resource/mcp"),
        scope: settings.scopes.to_string(),
        required: settings.required_scopes.clone(),
    };
    let config = &settings.config;
    let transport = TransportSettings {
        allowed_hosts: allowed_hosts(settings),
        allowed_origins: config.allowed_origins.clone(),
        worker_idle: config.mcp_session_worker_idle.min(config.mcp_session_idle_timeout),
        session_idle: config.mcp_session_idle_timeout,
        draining: shutdown.draining(),
        closing: shutdown.closing(),
    };
    let metadata = ProtectedResource {
        resource: settings.resource.to_string(),
        authorization_servers: vec![authorization_server],
        scopes: settings.scopes.iter().map(str::to_owned).collect(),
    };
    let sessions = mcp_oauth_resource::owner::SessionRules {
        store: backend.sessions.clone(),
        max_per_owner: config.max_sessions_per_user,
        max_streams: config.max_streams_per_session,
        idle_timeout: config.mcp_session_idle_timeout,
        creations: settings
            .rate_limits
            .mcp_sessions
            .map(|quota| mcp_oauth_resource::owner::CreationLimit { store: rate_limits, quota }),
    };
    match &settings.upstream {
        Some(McpUpstream::Http { url, identity }) => {
            let identity = match identity {
                CallerIdentitySetup::Headers => CallerIdentity::Headers,
                CallerIdentitySetup::Jwt(Some(key)) => {
                    CallerIdentity::Jwt(Arc::new(IdentitySigner::fixed(settings.issuer.as_str(), key.clone())))
                }
                CallerIdentitySetup::Jwt(None) => {
                    let signer = IdentitySigner::shared(
                        settings.issuer.as_str(),
                        backend.keys.clone(),
                        vault_key(settings),
                        config.signing_key_rotation,
                    );
                    CallerIdentity::Jwt(Arc::new(signer))
                }
            };
            let gateway = GatewaySettings {
                upstream: url.clone(),
                identity,
                timeout: config.mcp_upstream_timeout,
                max_message_bytes: mcp_oauth_resource::edge::MAX_BODY_BYTES,
                allowed_hosts: transport.allowed_hosts,
                allowed_origins: transport.allowed_origins,
            };
            tracing::info!(upstream = %url, "/mcp forwards to the upstream MCP server");
            return mcp_oauth_resource::gateway_routes(guard, metadata, sessions, settings.tool_scopes.clone(), gateway);
        }
        Some(McpUpstream::Stdio(command)) => {
            let stdio = StdioSettings {
                command: command.clone(),
                max_processes: config.max_upstream_processes,
                max_processes_per_user: config.max_upstream_processes_per_user,
                check_interval: config.mcp_upstream_check_interval,
                grants,
                children: shutdown.children(),
            };
            tracing::info!(program = %command.program, "/mcp runs the upstream MCP server over stdio, one process per session");
            let service = mcp_oauth_resource::gateway::stdio::service(transport, backend, stdio);
            return mcp_oauth_resource::stdio_routes(guard, metadata, sessions, settings.tool_scopes.clone(), service);
        }
        None => {}
    }
    if let Some(own) = own {
        let service = transport::service(transport, backend, own);
        return mcp_oauth_resource::routes(guard, metadata, sessions, settings.tool_scopes.clone(), service);
    }
    let demo = Arc::new(McpSettings {
        resource_update_interval: config.resource_update_interval,
        upstream,
        fixtures: config.mcp_demo_fixtures,
    });
    let service = transport::service(transport, backend, McpServer::per_session(demo));
    mcp_oauth_resource::routes(guard, metadata, sessions, settings.tool_scopes.clone(), service)
}

/// Runs what the configuration asks for until the process is asked to stop.
pub async fn run(config: Config) -> Result<(), StartupError> {
    match config.command {
        Some(crate::config::Command::Split) => run_split(config).await,
        Some(crate::config::Command::Admin(_)) => Err(StartupError::Config("`admin` runs a command; it serves nothing".into())),
        None => serve(config, None::<fn(&ServerContext) -> McpServer>).await,
    }
}

/// Runs the server the configuration describes with your own MCP server behind /mcp: `server`
/// makes one handler per session copy (any rmcp `ServerHandler`), and every request reaching
/// it carries a validated token for this resource, which a tool reads as a
/// [`Caller`](mcp_oauth_resource::caller::Caller) argument. See `examples/own_server.rs`.
pub async fn serve_with<S, F>(config: Config, server: F) -> Result<(), StartupError>
where
    S: ServerHandler + Send + 'static,
    F: Fn(&ServerContext) -> S + Send + Sync + 'static,
{
    if config.mcp_upstream_url.is_some() || config.mcp_upstream_command.is_some() {
        return Err(StartupError::Config("an embedded MCP server replaces MCP_UPSTREAM_URL and MCP_UPSTREAM_COMMAND".into()));
    }
    serve(config, Some(server)).await
}

/// The split deployment on one machine: the authorization server on 3001 and the MCP server on
/// 3232, which validates tokens by introspection over HTTP with a credential made up here.
async fn run_split(config: Config) -> Result<(), StartupError> {
    let credential = (String::from("mcp-resource-server"), mcp_oauth_domain::secret::generate_secret());
    let mut auth = config.clone();
    auth.command = None;
    auth.auth_mode = AuthMode::AuthServer;
    auth.port = Some(3001);
    auth.base_uri = Some("http://localhost:3001".into());
    auth.resources = vec!["http://localhost:3232/mcp".into()];
    auth.introspection_client_id = Some(credential.0.clone());
    auth.introspection_client_secret = Some(credential.1.clone().into());
    let mut mcp = auth.clone();
    mcp.auth_mode = AuthMode::External;
    mcp.port = Some(3232);
    mcp.base_uri = Some("http://localhost:3232".into());
    mcp.auth_server_url = Some("http://localhost:3001".into());
    mcp.token_validation = TokenValidation::Introspection;
    // The resource server keeps only MCP sessions; the authorization server owns the storage.
    mcp.storage_url = Some(ConnectionUrl::from("memory"));
    mcp.redis_url = None;
    // One recorder serves the process: its listener, if any, is the authorization server's.
    mcp.metrics_addr = None;
    // The admin API acts on the authorization server's storage.
    mcp.admin_token = None;
    let demo = None::<fn(&ServerContext) -> McpServer>;
    tokio::try_join!(serve(auth, demo), serve(mcp, demo)).map(|_| ())
}

/// `/metrics` on a listener of its own (`METRICS_ADDR`), apart from the public one.
async fn serve_metrics(addr: SocketAddr) -> Result<(), StartupError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr: addr.to_string(), source })?;
    let router = Router::new().route("/metrics", axum::routing::get(crate::http::metrics::scrape));
    tracing::info!(%addr, "metrics at /metrics");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Binds the configured address and serves until the process is asked to stop.
async fn serve<S, F>(config: Config, own: Option<F>) -> Result<(), StartupError>
where
    S: ServerHandler + Send + 'static,
    F: Fn(&ServerContext) -> S + Send + Sync + 'static,
{
    let settings = Settings::parse(config).map_err(StartupError::Config)?;
    let config = &settings.config;
    crate::http::metrics::install();
    if let Some(addr) = config.metrics_addr {
        serve_metrics(addr).await?;
    }
    let storage = open_storage(&settings).await?;
    let health = storage.stores.health.clone();
    let shutdown = Shutdown::default();
    let (app, admin) = build_parts(&settings, storage, &shutdown, own);
    if let Some(token) = &config.admin_token {
        let addr = config.admin_addr;
        crate::admin::serve(addr, admin, token.expose())
            .await
            .map_err(|source| StartupError::Bind { addr: addr.to_string(), source })?;
    }
    let addr = format!("{}:{}", config.host, config.port());
    let listener = TcpListener::bind(&addr).await.map_err(|source| StartupError::Bind { addr: addr.clone(), source })?;
    let local: SocketAddr = listener.local_addr().map_err(|source| StartupError::Bind { addr, source })?;
    announce(&settings, local);
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        let signal = crate::shutdown::signal().await;
        tracing::info!(signal, "stopping: no new connections; open streams end, requests in flight may finish");
        stopping.begin();
    });
    let limits = connection_limits(config);
    let served = crate::shutdown::serve(listener, app, shutdown.clone(), config.shutdown_timeout, limits).await;
    shutdown.reap(Duration::from_secs(10)).await;
    health.close().await;
    served.map_err(|source| StartupError::Bind { addr: local.to_string(), source })?;
    tracing::info!(%local, "stopped");
    Ok(())
}

/// The connection limits, `MAX_CONNECTIONS` lowered to what the open-file limit allows (each
/// connection is a descriptor; some are kept for storage, upstreams and logs).
pub fn connection_limits(config: &Config) -> crate::shutdown::ConnectionLimits {
    let mut max_connections = config.max_connections;
    if let Some(files) = crate::shutdown::raise_open_file_limit() {
        let room = usize::try_from(files.saturating_sub(256)).unwrap_or(usize::MAX).max(16);
        if room < max_connections {
            tracing::warn!(
                max_connections,
                open_file_limit = files,
                lowered_to = room,
                "MAX_CONNECTIONS lowered to fit the open-file limit"
            );
            max_connections = room;
        }
    }
    crate::shutdown::ConnectionLimits { header_read_timeout: config.header_read_timeout, max_connections }
}

/// Says where the server listens and, above all, the URL clients must use: the resource in its
/// tokens is `BASE_URI/mcp`, and a client that connects by another name is refused.
fn announce(settings: &Settings, local: SocketAddr) {
    let config = &settings.config;
    let mode = config.auth_mode.name();
    let storage = settings.storage.backend();
    match config.auth_mode {
        AuthMode::AuthServer => {
            tracing::info!(%local, mode, storage, issuer = %settings.issuer, "mcp-oauth-server listening");
        }
        _ => {
            tracing::info!(%local, mode, storage, mcp_url = %settings.resource, "mcp-oauth-server listening; connect MCP clients to mcp_url")
        }
    }
    if matches!(settings.login, LoginSetup::Dev { exposed: true }) {
        tracing::warn!(
            base_uri = %settings.issuer,
            "LOGIN=dev on a URL others can reach: anyone can approve as anyone; set LOGIN=oidc or LOGIN=github"
        );
    }
    let base_is_loopback = url::Url::parse(settings.issuer.as_str()).is_ok_and(|url| is_loopback(&url));
    if base_is_loopback && !local.ip().is_loopback() {
        tracing::warn!(
            host = %config.host,
            base_uri = %settings.issuer,
            "HOST accepts remote connections but BASE_URI is a loopback URL: remote clients will be refused; set BASE_URI to the URL they use"
        );
    }
}
