//! A real upstream identity provider for the login tests: panva's `oidc-provider` (from npm,
//! `tests/idp`) as a child process on a free loopback port, and a headless browser for its
//! development login and consent pages (plain HTTP with a cookie jar: the pages are forms).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header;
use url::Url;

pub const CLIENT_ID: &str = "mcp-oauth-server";
pub const CLIENT_SECRET: &str = "upstream-client-secret";

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp")
}

pub struct TestIdp {
    pub issuer: String,
    pub port: u16,
    redirect_uris: Vec<String>,
    access_token_ttl: u64,
    signing_key_pem: Option<String>,
    child: Option<Child>,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestIdp {
    /// Starts the provider with a client whose redirect URIs are `redirect_uris` (our
    /// callbacks) and whose access tokens live `access_token_ttl` seconds.
    pub async fn start(redirect_uris: &[String], access_token_ttl: u64) -> Self {
        Self::start_signing_with(redirect_uris, access_token_ttl, None).await
    }

    /// As [`Self::start`], signing ID tokens (ES256, kid `test-key`) with the P-256 key in
    /// `signing_key_pem` (PKCS#8), which the test then holds too.
    pub async fn start_signing_with(redirect_uris: &[String], access_token_ttl: u64, signing_key_pem: Option<String>) -> Self {
        mcp_oauth_adapters::install_tls_provider();
        let port = crate::process::free_port();
        let mut idp = Self {
            issuer: format!("http://127.0.0.1:{port}"),
            port,
            redirect_uris: redirect_uris.to_vec(),
            access_token_ttl,
            signing_key_pem,
            child: None,
        };
        idp.spawn().await;
        idp
    }

    async fn spawn(&mut self) {
        let dir = idp_dir();
        let node = dir.join("node_modules/.bin/node");
        assert!(node.exists(), "run `npm ci` in tests/idp first (./scripts/test does it)");
        let mut command = Command::new(node);
        if let Some(pem) = &self.signing_key_pem {
            command.env("SIGNING_KEY_PEM", pem);
        }
        let child = command
            .current_dir(&dir)
            .arg("provider.mjs")
            .env("PORT", self.port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URIS", self.redirect_uris.join(","))
            .env("ACCESS_TOKEN_TTL", self.access_token_ttl.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        self.child = Some(child);
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if reqwest::get(&discovery).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oidc-provider did not answer at {discovery}");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The settings that point a server at this provider.
    pub fn login_args(&self) -> Vec<String> {
        [
            "--login",
            "oidc",
            "--upstream-issuer",
            &self.issuer,
            "--upstream-client-id",
            CLIENT_ID,
            "--upstream-client-secret",
            CLIENT_SECRET,
            "--upstream-scopes",
            "openid email profile groups",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

/// The user's browser at the identity provider: keeps the provider's cookies between pages.
pub struct UpstreamBrowser {
    http: reqwest::Client,
}

impl Default for UpstreamBrowser {
    fn default() -> Self {
        mcp_oauth_adapters::install_tls_provider();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar)
            .build()
            .expect("client builds");
        Self { http }
    }
}

fn location(response: &reqwest::Response, base: &Url) -> Url {
    let value = response.headers().get(header::LOCATION).expect("a redirect").to_str().unwrap();
    base.join(value).unwrap()
}

impl UpstreamBrowser {
    /// Follows the provider from `authorization_url` through its login (as `login`) and
    /// consent pages (answered with `confirm` or abort) until it redirects elsewhere; returns
    /// that redirect (our callback).
    pub async fn sign_in(&self, authorization_url: &Url, login: &str, confirm: bool) -> Url {
        let mut url = authorization_url.clone();
        let origin = url.origin().ascii_serialization();
        for _ in 0..12 {
            if url.origin().ascii_serialization() != origin {
                return url;
            }
            let response = self.http.get(url.clone()).send().await.unwrap();
            if response.status().is_redirection() {
                url = location(&response, &url);
                continue;
            }
            let page = response.text().await.unwrap();
            let action = page
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no form on the provider's page: {page}"))
                .to_owned();
            let target = url.join(&action).unwrap();
            let prompt = page.split("name=\"prompt\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
            let response = match (prompt, confirm) {
                ("login", _) => {
                    let form = [("prompt", "login"), ("login", login), ("password", "any")];
                    self.http.post(target.clone()).form(&form).send().await.unwrap()
                }
                (_, true) => self.http.post(target.clone()).form(&[("prompt", prompt)]).send().await.unwrap(),
                (_, false) => self.http.get(Url::parse(&format!("{target}/abort")).unwrap()).send().await.unwrap(),
            };
            assert!(response.status().is_redirection(), "the provider answered {}", response.status());
            url = location(&response, &target);
        }
        panic!("the provider never redirected back");
    }
}
