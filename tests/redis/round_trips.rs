//! How many round trips to Redis each operation costs. Token validation must cost one.

use std::collections::HashMap;

use mcp_oauth_testkit::http::{Pkce, TestServer, redirect_params};
use mcp_oauth_testkit::redis_server::TestRedis;

/// Commands Redis has processed, by name, from INFO commandstats.
fn command_calls(redis: &TestRedis) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut redis.connection()).unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, stats) = line.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, calls)| *calls > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_operation() {
    let redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let store = redis.store().await;
    let server = TestServer::start_with(
        &["--introspection-client-id", "rs", "--introspection-client-secret", "rs-secret"],
        // As the binary wires Redis: client lookups cached for CLIENT_CACHE_TTL.
        mcp_oauth_adapters::client_cache::CachedClients::wrap(store.stores(), std::time::Duration::from_secs(5)),
    )
    .await;
    let mut counts: Vec<(&str, u64)> = Vec::new();
    let mut last = store.round_trips();
    let mut measure = |name: &'static str, counts: &mut Vec<(&str, u64)>| {
        let now = store.round_trips();
        counts.push((name, now - last));
        last = now;
    };

    let client = server.client("none").await;
    measure("register a client", &mut counts);
    let pkce = Pkce::new();
    let page = server.authorize(&client, &pkce, &[]).await;
    let form = mcp_oauth_testkit::http::ConsentForm::read(page).await;
    measure("GET /authorize (consent page)", &mut counts);
    let redirect = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    let code = redirect_params(&redirect)["code"].clone();
    measure("POST /authorize (approve)", &mut counts);
    let (_, tokens) = server.exchange(&client, &code, &pkce).await;
    measure("token: authorization_code", &mut counts);
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    let before = command_calls(&redis);
    let response =
        server.http.get(server.resource()).bearer_auth(&access).header("accept", "text/event-stream").send().await.unwrap();
    let after = command_calls(&redis);
    measure("token validation (any /mcp request)", &mut counts);
    assert_ne!(response.status(), 401);
    let validation = delta(&before, &after);
    assert_eq!(validation, HashMap::from([("get".to_owned(), 1)]), "validation is one GET");

    server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    measure("token: refresh_token (rotation)", &mut counts);
    server.introspect(("rs", "rs-secret"), &access).await;
    measure("introspect (access token)", &mut counts);
    server.revoke(&client, &access).await;
    measure("revoke (access token)", &mut counts);

    println!("| Operation | Round trips |\n|---|---|");
    for (name, trips) in &counts {
        println!("| {name} | {trips} |");
    }
    let trips = |name: &str| counts.iter().find(|(n, _)| n.starts_with(name)).unwrap().1;
    assert_eq!(trips("token validation"), 1, "token validation costs one round trip");
    assert!(trips("POST /authorize") <= 2, "approval: take the request, store the code");
    assert!(trips("token: authorization_code") <= 3, "exchange: redeem, then the tokens with the code's mark");
    assert!(trips("token: refresh_token") <= 2, "refresh: read, then rotate with the access token");
}
