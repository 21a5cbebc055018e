use clap::Parser;
use mcp_oauth_app::config::{Command, Config, LogFormat};
use mcp_oauth_app::log_time::UtcMicros;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Where AUDIT_LOG sends the trail: each event is one write of one line, unbuffered, so a
/// line is on disk (or out) as soon as its event is.
fn audit_writer(target: Option<&str>) -> std::io::Result<Option<BoxMakeWriter>> {
    Ok(match target {
        None => None,
        Some("stdout") => Some(BoxMakeWriter::new(std::io::stdout)),
        Some(path) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            Some(BoxMakeWriter::new(std::sync::Arc::new(file)))
        }
    })
}

// Every request allocates and frees many small buffers across worker threads, where glibc's
// allocator spent about a fifth of the time under load (`./scripts/bench`, README Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hands memory a worker thread freed back to the system when the thread runs out of work, at
/// most once a second per thread: mimalloc keeps freed pages for reuse and returns them only
/// when the thread allocates again, so a server whose idle sessions were released stayed as
/// large as at its peak (README, Benchmarks).
fn return_freed_memory() {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    LAST.with(|last| {
        if last.get().is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
            last.set(Some(std::time::Instant::now()));
            // SAFETY: mi_collect takes no pointer; it frees this thread's unused pages.
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
    });
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().on_thread_park(return_freed_memory).build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve()),
        Err(error) => {
            eprintln!("mcp-oauth-server: cannot start the runtime: {error}");
            std::process::exit(1);
        }
    }
}

async fn serve() {
    mcp_oauth_adapters::install_tls_provider();
    let config = Config::parse();
    if let Some(Command::Admin(args)) = &config.command {
        let token = config.admin_token.as_ref().map(|t| t.expose());
        std::process::exit(mcp_oauth_app::admin::cli::run(args, config.admin_addr, token).await);
    }
    let filter = EnvFilter::try_new(&config.rust_log).unwrap_or_else(|_| EnvFilter::new("info"));
    let spans = if config.log_spans { FmtSpan::CLOSE } else { FmtSpan::NONE };
    // Lines are written by a thread of its own, a batch per write, not by the request that
    // logged them: a write of its own per access line took a tenth of an introspection's time
    // (README, Benchmarks). Never lossy: a request waits rather than a line being dropped. The
    // queue is allocated whole at start: the default 128,000 lines took 4 MB of an idle server.
    let (stdout, flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(1024)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    let logs = match config.log_format {
        LogFormat::Text => {
            fmt::layer().with_timer(UtcMicros).with_writer(stdout).with_span_events(spans).with_filter(filter).boxed()
        }
        // One object a line; the request's span (method, route, request id, client) with each,
        // and with LOG_SPANS the whole chain of spans it runs in.
        LogFormat::Json => fmt::layer()
            .with_timer(UtcMicros)
            .with_writer(stdout)
            .json()
            .with_current_span(true)
            .with_span_list(config.log_spans)
            .with_span_events(spans)
            .with_filter(filter)
            .boxed(),
    };
    let audit = match audit_writer(config.audit_log.as_deref()) {
        Ok(writer) => writer.map(|writer| {
            // The request's span (its id, route and peer) rides along with each event.
            let only_audit =
                Targets::new().with_target("audit", Level::INFO).with_target("mcp_oauth_app::http::request_id", Level::INFO);
            fmt::layer()
                .json()
                .with_timer(UtcMicros)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer)
                .with_filter(only_audit)
        }),
        Err(error) => {
            eprintln!("mcp-oauth-server: AUDIT_LOG: {error}");
            std::process::exit(1);
        }
    };
    // Every layer filtered: one without a filter (or an absent `Option` layer) is interested in
    // every span and event, debug and trace included, and the registry then makes and
    // dispatches each of them (hyper's, rmcp's, the storage spans) on every request, only for
    // the other layers to drop them.
    let audit_events = mcp_oauth_app::http::metrics::AuditEvents.with_filter(Targets::new().with_target("audit", Level::INFO));
    let subscriber = tracing_subscriber::registry().with(logs).with(audit_events);
    match audit {
        Some(audit) => subscriber.with(audit).init(),
        None => subscriber.init(),
    }
    let result = mcp_oauth_app::server::run(config).await;
    drop(flush_on_exit);
    if let Err(error) = result {
        eprintln!("mcp-oauth-server: {error}");
        std::process::exit(1);
    }
}
