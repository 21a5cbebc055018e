//! `mcp-oauth-server admin …`: the admin API's client, for an operator's shell. It reads the
//! same ADMIN_ADDR and ADMIN_TOKEN as the server, so on the server's machine, with its
//! environment, no flag is needed.

use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// The admin API's URL; by default `http://ADMIN_ADDR`.
    #[arg(long, env = "ADMIN_URL")]
    pub url: Option<String>,
    /// Print the API's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Registered and configured clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Revocation of every token of a user or a client.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Live MCP sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// How many records of each kind are kept, and live MCP sessions.
    Stats,
    /// Frees expired records now rather than at the next sweep.
    PurgeExpired,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientsCommand {
    List,
    /// One client, with how many grants and users it holds.
    Show {
        // Generated client ids are base64url and may begin with `-`: an id, not a flag.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Deletes a registration and revokes its tokens and sessions.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct HolderArgs {
    /// The user's subject.
    #[arg(long, allow_hyphen_values = true)]
    pub user: Option<String>,
    /// The client id (a generated one may begin with `-`).
    #[arg(long, allow_hyphen_values = true)]
    pub client: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokensCommand {
    /// Revokes every access and refresh token, MCP session and upstream token of a user or a client.
    Revoke(HolderArgs),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SessionsCommand {
    List {
        /// Only this user's sessions.
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
    },
}

/// Runs the command against the admin API; the process's exit code.
pub async fn run(args: &AdminArgs, admin_addr: std::net::SocketAddr, token: Option<&str>) -> i32 {
    let Some(token) = token else {
        eprintln!("mcp-oauth-server admin: set ADMIN_TOKEN to the server's admin token");
        return 1;
    };
    let base = args.url.clone().unwrap_or_else(|| {
        let host = if admin_addr.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], admin_addr.port()))
        } else {
            admin_addr
        };
        format!("http://{host}")
    });
    match call(&base, token, &args.command).await {
        Ok(answer) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
            } else {
                print!("{}", text(&args.command, &answer));
            }
            0
        }
        Err(message) => {
            eprintln!("mcp-oauth-server admin: {message}");
            1
        }
    }
}

fn segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn call(base: &str, token: &str, command: &AdminCommand) -> Result<Value, String> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build().map_err(|e| e.to_string())?;
    let url = |path: &str| format!("{}{path}", base.trim_end_matches('/'));
    let request = match command {
        AdminCommand::Clients(ClientsCommand::List) => client.get(url("/admin/clients")),
        AdminCommand::Clients(ClientsCommand::Show { client_id }) => {
            client.get(url(&format!("/admin/clients/{}", segment(client_id))))
        }
        AdminCommand::Clients(ClientsCommand::Delete { client_id }) => {
            client.delete(url(&format!("/admin/clients/{}", segment(client_id))))
        }
        AdminCommand::Tokens(TokensCommand::Revoke(holder)) => {
            client.post(url("/admin/tokens/revoke")).json(&serde_json::json!({ "user": holder.user, "client": holder.client }))
        }
        AdminCommand::Sessions(SessionsCommand::List { user }) => match user {
            Some(user) => client.get(url(&format!("/admin/sessions?user={}", segment(user)))),
            None => client.get(url("/admin/sessions")),
        },
        AdminCommand::Stats => client.get(url("/admin/stats")),
        AdminCommand::PurgeExpired => client.post(url("/admin/purge-expired")),
    };
    let response = request.bearer_auth(token).send().await.map_err(|e| {
        format!("cannot reach the admin API at {base} ({e}); is ADMIN_TOKEN set on the server, and ADMIN_ADDR the same?")
    })?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("the admin API answered {status} without JSON: {e}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        let description = body.get("error_description").and_then(Value::as_str).unwrap_or("no description");
        Err(format!("{description} ({status})"))
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value.get(name).and_then(Value::as_str).unwrap_or("-")
}

fn count(value: &Value, name: &str) -> u64 {
    value.get(name).and_then(Value::as_u64).unwrap_or_default()
}

/// The answer as lines for a person.
fn text(command: &AdminCommand, answer: &Value) -> String {
    let rows = |name: &str| answer.get(name).and_then(Value::as_array).cloned().unwrap_or_default();
    match command {
        AdminCommand::Clients(ClientsCommand::List) => rows("clients")
            .iter()
            .map(|c| {
                format!(
                    "{}\t{}\t{}\texpires {}\n",
                    field(c, "client_id"),
                    field(c, "origin"),
                    field(c, "client_name"),
                    field(c, "expires_at")
                )
            })
            .collect(),
        AdminCommand::Clients(ClientsCommand::Show { .. }) => {
            format!("{}\n", serde_json::to_string_pretty(answer).unwrap_or_default())
        }
        AdminCommand::Clients(ClientsCommand::Delete { .. }) => format!(
            "deleted {}: {} grants revoked, {} MCP sessions ended\n",
            field(answer, "deleted"),
            count(answer, "grants_revoked"),
            count(answer, "sessions_ended")
        ),
        AdminCommand::Tokens(_) => {
            format!(
                "{} grants revoked, {} MCP sessions ended\n",
                count(answer, "grants_revoked"),
                count(answer, "sessions_ended")
            )
        }
        AdminCommand::Sessions(_) => rows("sessions")
            .iter()
            .map(|s| {
                format!(
                    "{}\t{}\t{}\tlast used {}\n",
                    field(s, "id"),
                    field(s, "subject"),
                    field(s, "client_id"),
                    field(s, "last_used")
                )
            })
            .collect(),
        AdminCommand::Stats => {
            let mut lines = String::new();
            if let Some(Value::Object(records)) = answer.get("records") {
                for (kind, n) in records {
                    lines.push_str(&format!("{kind}\t{n}\n"));
                }
            }
            if let Some(n) = answer.get("mcp_sessions") {
                lines.push_str(&format!("mcp_sessions\t{n}\n"));
            }
            lines
        }
        AdminCommand::PurgeExpired => format!("{} expired records purged\n", count(answer, "purged")),
    }
}
