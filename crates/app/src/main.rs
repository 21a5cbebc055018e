use std::io::IsTerminal;

use clap::Parser;
use mcp_oauth_app::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

// Every request allocates and frees many small buffers across worker threads, where glibc's
// allocator spent about a fifth of the time under load (`./scripts/bench`, README Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    mcp_oauth_adapters::install_tls_provider();
    let config = Config::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.rust_log).unwrap_or_else(|_| EnvFilter::new("info")))
        // Colour codes only for a person at a terminal, never in a file or a log collector.
        .with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Text => logs.init(),
        // One object a line; the request's span (method, route, request id, client) with each.
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    if let Err(error) = mcp_oauth_app::server::run(config).await {
        eprintln!("mcp-oauth-server: {error}");
        std::process::exit(1);
    }
}
