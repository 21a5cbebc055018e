//! The redirect sets real MCP clients register (shared/reference/clients.md): each registers in
//! one request, and a flow through one of its redirect URIs completes.

use mcp_oauth_testkit::http::{ConsentForm, Pkce, TestClient, TestServer};
use reqwest::header;
use serde_json::json;
use url::Url;

struct RealClient {
    name: &'static str,
    registers: &'static [&'static str],
    /// The redirect URI of the flow: one of the registered, or a loopback one on another port.
    uses: &'static str,
    /// What the consent page names as the destination.
    shown: &'static str,
}

const CLIENTS: &[RealClient] = &[
    RealClient {
        name: "Cursor",
        registers: &[
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback",
        ],
        uses: "cursor://anysphere.cursor-mcp/oauth/callback",
        shown: "an application on this device, <code>cursor:</code>",
    },
    RealClient {
        name: "VS Code",
        registers: &[
            "https://vscode.dev/redirect",
            "https://insiders.vscode.dev/redirect",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
        ],
        uses: "http://127.0.0.1:51123/",
        shown: "<strong>127.0.0.1</strong>",
    },
    RealClient {
        name: "VS Code (protocol handler)",
        registers: &["vscode://vscode.github-authentication/did-authenticate"],
        uses: "vscode://vscode.github-authentication/did-authenticate",
        shown: "an application on this device, <code>vscode:</code>",
    },
    RealClient {
        name: "Claude",
        registers: &["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"],
        uses: "https://claude.com/api/mcp/auth_callback",
        shown: "<strong>claude.com</strong>",
    },
    RealClient {
        name: "Claude Code",
        registers: &["http://localhost/callback"],
        uses: "http://localhost:49152/callback",
        shown: "<strong>localhost</strong>",
    },
    RealClient {
        name: "ChatGPT",
        registers: &["https://chatgpt.com/connector_platform_oauth_redirect", "https://chatgpt.com/connector/oauth/a1b2c3"],
        uses: "https://chatgpt.com/connector/oauth/a1b2c3",
        shown: "<strong>chatgpt.com</strong>",
    },
    RealClient {
        name: "MCP Inspector",
        registers: &["http://localhost:6274/oauth/callback", "http://127.0.0.1:6276/oauth/callback"],
        uses: "http://127.0.0.1:6276/oauth/callback",
        shown: "<strong>127.0.0.1</strong>",
    },
    RealClient {
        name: "a mobile app",
        registers: &["com.example.app:/oauth2redirect"],
        uses: "com.example.app:/oauth2redirect",
        shown: "an application on this device, <code>com.example.app:</code>",
    },
];

#[tokio::test]
async fn every_real_clients_redirect_set_registers_and_completes_a_flow() {
    let server = TestServer::start(&[]).await;
    for real in CLIENTS {
        let (status, body) = server
            .register(json!({
                "redirect_uris": real.registers,
                "client_name": real.name,
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            }))
            .await;
        assert_eq!(status, 201, "{}: {body}", real.name);
        assert_eq!(body["redirect_uris"], json!(real.registers), "{}: stored exactly as sent", real.name);
        let native = real.registers.iter().any(|u| !u.starts_with("http"));
        assert_eq!(body["application_type"], if native { "native" } else { "web" }, "{}", real.name);
        let client =
            TestClient { client_id: body["client_id"].as_str().unwrap().to_owned(), secret: None, method: "none".into() };

        let pkce = Pkce::new();
        let page = server.authorize(&client, &pkce, &[("redirect_uri", real.uses)]).await;
        assert_eq!(page.status(), 200, "{}", real.name);
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        let form = ConsentForm::read(page).await;
        assert!(form.html.contains(real.shown), "{}: the consent page names {}", real.name, real.shown);
        let target = Url::parse(real.uses).unwrap();
        let source = if target.scheme().starts_with("http") {
            target.origin().ascii_serialization()
        } else {
            format!("{}:", target.scheme())
        };
        assert!(csp.contains(&format!("form-action 'self' {source}")), "{}: {csp}", real.name);

        let answer = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
        assert_eq!(answer.status(), 302, "{}", real.name);
        let location = answer.headers()[header::LOCATION].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{}?", real.uses)),
            "{}: {location} is the redirect URI plus parameters",
            real.name
        );
        let params: std::collections::HashMap<String, String> =
            Url::parse(&location).unwrap().query_pairs().into_owned().collect();
        assert_eq!((params["state"].as_str(), params["iss"].as_str()), ("state-123", server.base.as_str()), "{}", real.name);

        let form = [
            ("grant_type", "authorization_code"),
            ("code", params["code"].as_str()),
            ("redirect_uri", real.uses),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        let (status, _, tokens) = server.token(&client, &form).await;
        assert_eq!(status, 200, "{}: {tokens}", real.name);
        assert_eq!(server.mcp_initialize(tokens["access_token"].as_str()).await.status(), 200, "{}", real.name);
    }
}

#[tokio::test]
async fn a_web_client_may_not_register_a_private_use_scheme() {
    let server = TestServer::start(&[]).await;
    let (status, body) = server
        .register(json!({"redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"], "application_type": "web"}))
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_redirect_uri")), "{body}");
    let (status, body) = server
        .register(json!({"redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"], "application_type": "native"}))
        .await;
    assert_eq!((status, body["application_type"].as_str()), (201, Some("native")), "{body}");
    let (status, body) = server.register(json!({"redirect_uris": ["https://a.example/cb"], "application_type": "kiosk"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_client_metadata")), "{body}");
}
