//! Start-up as a user meets it: bad configuration is a clear message and exit code 1.

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-oauth-server"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_base_uri_that_is_not_a_url_is_refused_by_name() {
    let (code, stderr) = run(&[("BASE_URI", "not a url"), ("PORT", "0")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("BASE_URI"), "{stderr}");
}

#[test]
fn a_malformed_duration_is_refused_by_name() {
    let (code, stderr) = run(&[("ACCESS_TOKEN_TTL", "soon"), ("PORT", "0")]);
    assert_eq!(code, Some(2), "clap reports argument errors with exit code 2");
    assert!(stderr.contains("ACCESS_TOKEN_TTL") || stderr.contains("access-token-ttl"), "{stderr}");
}

#[test]
fn an_unknown_mode_is_refused() {
    let (code, stderr) = run(&[("AUTH_MODE", "sideways"), ("PORT", "0")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("sideways"), "{stderr}");
}

#[test]
fn a_port_in_use_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (code, stderr) = run(&[("PORT", &port)]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

#[test]
fn external_mode_without_a_usable_auth_server_url_is_refused_by_name() {
    let (code, stderr) = run(&[("AUTH_MODE", "external"), ("PORT", "0")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("AUTH_SERVER_URL is required"), "{stderr}");
    let (code, stderr) = run(&[("AUTH_MODE", "external"), ("AUTH_SERVER_URL", "nope"), ("PORT", "0")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("AUTH_SERVER_URL `nope` is not a URL"), "{stderr}");
}

#[test]
fn a_storage_url_that_names_no_database_is_refused_at_start() {
    for url in ["sqlite://", "sqlite:", "postgres://localhost/db"] {
        let (code, stderr) = run(&[("STORAGE_URL", url), ("PORT", "0")]);
        assert_eq!(code, Some(1), "{url}: {stderr}");
        assert!(stderr.contains("STORAGE_URL"), "{url}: {stderr}");
    }
    let (_, stderr) = run(&[("STORAGE_URL", "sqlite://"), ("PORT", "0")]);
    assert!(stderr.contains("names no database file"), "{stderr}");
}

#[test]
fn urls_and_origins_that_cannot_work_are_refused_by_name() {
    for (name, value) in [
        ("INTROSPECTION_URL", "not a url"),
        ("INTROSPECTION_URL", "ftp://as.example/introspect"),
        ("JWKS_URL", "/jwks"),
        ("ALLOWED_ORIGINS", "https://app.example/path"),
        ("ALLOWED_ORIGINS", "app.example"),
    ] {
        let (code, stderr) = run(&[(name, value), ("PORT", "0")]);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        let flag = name.to_lowercase().replace('_', "-");
        assert!(stderr.contains(name) || stderr.contains(&flag), "{name}={value}: {stderr}");
    }
}
