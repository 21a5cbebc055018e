//! The real binary's life: what it says at start, how it stops on SIGTERM and SIGINT with
//! streams open, and how it ends work nobody waits for.

use std::time::{Duration, Instant};

use mcp_oauth_testkit::http::{TestServer, http_client};
use mcp_oauth_testkit::mcp::{EventStream, RawSession};
use mcp_oauth_testkit::process::{ServerProcess, free_port};
use serde_json::{Value, json};

async fn token(process: &ServerProcess) -> String {
    let server = TestServer::remote(process.base.clone(), http_client());
    let client = server.client("none").await;
    server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned()
}

fn long_running(id: u64, duration: f64, steps: u32) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": "longRunningOperation", "arguments": { "duration": duration, "steps": steps }, "_meta": { "progressToken": id } }
    })
}

async fn get_stream(session: &RawSession) -> EventStream {
    let response = session.request(reqwest::Method::GET).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(response.status(), 200);
    EventStream::new(response)
}

/// Reads messages until the stream ends; None if it is still open after `within`.
async fn ended_within(stream: &mut EventStream, within: Duration) -> Option<Vec<Value>> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match stream.next_message(deadline - Instant::now()).await {
            Some(message) => seen.push(message),
            None => return (Instant::now() < deadline).then_some(seen),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_ends_open_streams_lets_requests_in_flight_finish_and_exits_0() {
    for signal in ["TERM", "INT"] {
        let mut process = ServerProcess::start(free_port(), &[("SHUTDOWN_TIMEOUT", "20s")]).await;
        let session = RawSession::open(&process.resource(), &token(&process).await).await;
        let mut standalone = get_stream(&session).await;
        let in_flight = session.post_json(long_running(7, 1.5, 3)).await;
        assert_eq!(in_flight.status(), 200);
        let mut in_flight = EventStream::new(in_flight);
        let first = in_flight.next_message(Duration::from_secs(5)).await.expect("the tool reports progress");
        assert_eq!(first["method"], "notifications/progress");

        let signalled = Instant::now();
        process.signal(signal);
        assert!(ended_within(&mut standalone, Duration::from_secs(5)).await.is_some(), "{signal}: the GET stream ends");
        let rest = ended_within(&mut in_flight, Duration::from_secs(10)).await.expect("the request in flight finishes");
        let result = rest.iter().find(|m| m["id"] == 7).unwrap_or_else(|| panic!("{signal}: no result in {rest:?}"));
        assert!(result["result"]["content"][0]["text"].as_str().unwrap().contains("completed"), "{result}");
        let status = process.exit_within(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("{signal}: still running"));
        assert!(status.success(), "{signal}: exit status {status}");
        assert!(signalled.elapsed() < Duration::from_secs(10), "{signal}: stopping waited for nothing but the request");
        let logs = process.logs();
        assert!(logs.contains(&format!("signal=\"SIG{signal}\"")) && logs.contains("stopping"), "{logs}");
        assert!(logs.contains("stopped"), "{logs}");
        assert!(http_client().get(format!("{}/health", process.base)).send().await.is_err(), "the listener is closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_still_running_at_the_deadline_are_cancelled_and_the_process_exits() {
    let mut process = ServerProcess::start(free_port(), &[("SHUTDOWN_TIMEOUT", "1s")]).await;
    let session = RawSession::open(&process.resource(), &token(&process).await).await;
    let _standalone = get_stream(&session).await;
    let mut endless = EventStream::new(session.post_json(long_running(9, 600.0, 600)).await);
    assert!(endless.next_message(Duration::from_secs(5)).await.is_some());
    let signalled = Instant::now();
    process.signal("TERM");
    let status = process.exit_within(Duration::from_secs(8)).await.expect("the process exits after the deadline");
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() >= Duration::from_secs(1), "the request got its deadline");
    assert!(ended_within(&mut endless, Duration::from_secs(2)).await.is_some(), "the cut stream is closed");
    let logs = process.logs();
    assert!(logs.contains("cancelled") && logs.contains("stopped"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_stops_when_its_stream_is_gone_or_its_request_is_cancelled() {
    let process = ServerProcess::start(free_port(), &[("RUST_LOG", "info")]).await;
    let session = RawSession::open(&process.resource(), &token(&process).await).await;

    let mut abandoned = EventStream::new(session.post_json(long_running(3, 600.0, 600)).await);
    assert!(abandoned.next_message(Duration::from_secs(5)).await.is_some(), "the tool is running");
    drop(abandoned);
    process.wait_for_log("steps_done=", 1).await;

    let mut cancelled = EventStream::new(session.post_json(long_running(4, 600.0, 600)).await);
    assert!(cancelled.next_message(Duration::from_secs(5)).await.is_some());
    let notice = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 4, "reason": "user" } });
    assert_eq!(session.post_json(notice).await.status(), 202);
    process.wait_for_log("steps_done=", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_tool_arguments_are_refused_before_the_tool_runs() {
    let process = ServerProcess::start(free_port(), &[("RUST_LOG", "info")]).await;
    let session = RawSession::open(&process.resource(), &token(&process).await).await;
    let started = Instant::now();
    for arguments in [
        json!({ "duration": 1, "steps": 4_000_000_000u64 }),
        json!({ "duration": 1, "steps": 0 }),
        json!({ "duration": 86_400, "steps": 1 }),
        json!({ "duration": -1, "steps": 1 }),
    ] {
        let call = json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": { "name": "longRunningOperation", "arguments": arguments } });
        let (_, answer) = session.call(call).await;
        let last = answer.last().unwrap();
        assert!(last["result"]["isError"] == true || last["error"]["code"] == -32602, "{arguments}: {last}");
    }
    let (_, answer) = session
        .call(json!({ "jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": { "name": "getResourceReference", "arguments": { "resourceId": 101 } } }))
        .await;
    assert_eq!(answer.last().unwrap()["result"]["isError"], true);
    assert!(started.elapsed() < Duration::from_secs(5), "no refused call ran");

    let (_, tools) = session.call(json!({ "jsonrpc": "2.0", "id": 8, "method": "tools/list" })).await;
    let tools = tools.last().unwrap()["result"]["tools"].as_array().unwrap().clone();
    let long = tools.iter().find(|t| t["name"] == "longRunningOperation").unwrap();
    let steps = &long["inputSchema"]["properties"]["steps"];
    assert_eq!((steps["minimum"].clone(), steps["maximum"].clone()), (json!(1), json!(1000)), "{long}");
    assert_eq!(long["inputSchema"]["properties"]["duration"]["maximum"], 600, "{long}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_session_answers_204() {
    let process = ServerProcess::start(free_port(), &[]).await;
    let session = RawSession::open(&process.resource(), &token(&process).await).await;
    let deleted = session.request(reqwest::Method::DELETE).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let again = session.request(reqwest::Method::DELETE).send().await.unwrap();
    assert_eq!(again.status(), 404, "the session is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_log_names_the_mcp_url_and_warns_when_remote_clients_would_be_refused() {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let process = ServerProcess::start(port, &[("BASE_URI", &base), ("HOST", "0.0.0.0")]).await;
    let logs = process.logs();
    assert!(logs.contains(&format!("mcp_url={base}/mcp")), "{logs}");
    assert!(logs.contains("WARN") && logs.contains("BASE_URI is a loopback URL"), "{logs}");

    let quiet = ServerProcess::start(free_port(), &[]).await;
    let logs = quiet.logs();
    assert!(logs.contains(&format!("mcp_url={}/mcp", quiet.base)), "{logs}");
    assert!(!logs.contains("WARN"), "nothing to warn about on loopback: {logs}");
}

/// Slowloris against the real binary: thousands of connections that trickle a header line
/// every second are each closed within the header timeout plus a little, /health answers
/// throughout, and an open SSE stream (no longer reading headers) is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_cut_while_health_and_open_streams_carry_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let process = ServerProcess::start(free_port(), &[("HEADER_READ_TIMEOUT", "2")]).await;
    let token = token(&process).await;
    let session = RawSession::open(&process.resource(), &token).await;
    let mut stream = get_stream(&session).await;

    let address = format!("127.0.0.1:{}", process.port);
    let mut slow = Vec::new();
    for _ in 0..3000 {
        let Ok(mut tcp) = tokio::net::TcpStream::connect(&address).await else { break };
        if tcp.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.is_err() {
            break;
        }
        slow.push(tcp);
    }
    assert!(slow.len() >= 1000, "opened only {} connections", slow.len());
    let opened = Instant::now();
    let health = http_client();
    let closed = tokio::spawn(async move {
        let mut closed_by = Vec::new();
        for mut tcp in slow {
            let mut byte = [0u8; 1];
            // Trickling a header line each second never finishes the headers.
            let ended = loop {
                match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut byte)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                    Ok(Ok(_)) => continue,
                    Err(_) if opened.elapsed() > Duration::from_secs(15) => break false,
                    Err(_) => {
                        let _ = tcp.write_all(b"X-Slow: 1\r\n").await;
                    }
                }
            };
            closed_by.push((ended, opened.elapsed()));
        }
        closed_by
    });
    for _ in 0..6 {
        let answer = health.get(format!("{}/health", process.base)).timeout(Duration::from_secs(2)).send().await;
        assert!(answer.is_ok_and(|a| a.status().is_success()), "/health answers during the attack");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let closed = closed.await.unwrap();
    assert!(closed.iter().all(|(ended, _)| *ended), "every slow connection was closed");
    let latest = closed.iter().map(|(_, at)| *at).max().unwrap();
    assert!(latest < Duration::from_secs(8), "all closed within the 2 s header timeout plus a few seconds: {latest:?}");
    assert!(ended_within(&mut stream, Duration::from_millis(500)).await.is_none(), "the open SSE stream is still open");
}
