//! An https server on loopback that publishes Client ID Metadata Documents, with a certificate
//! from a test CA written to a file the server under test is told to trust (`CIMD_CA_CERT`).
//! Each path answers what the test set for it, and counts the fetches it got.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What one path answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Waited before answering.
    pub delay: Duration,
}

impl Answer {
    /// A JSON document with `Cache-Control: cache_control` when given.
    pub fn json(document: &Value, cache_control: Option<&str>) -> Self {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(value) = cache_control {
            headers.push(("cache-control", value.to_owned()));
        }
        Self { status: 200, headers, body: serde_json::to_vec(document).unwrap(), delay: Duration::ZERO }
    }
}

#[derive(Default)]
struct Published {
    answers: HashMap<String, Answer>,
    fetches: HashMap<String, usize>,
}

pub struct DocumentHost {
    /// `https://localhost:PORT`.
    pub base: String,
    pub port: u16,
    /// The test CA's certificate (PEM), for `CIMD_CA_CERT`.
    pub ca_file: PathBuf,
    published: Arc<Mutex<Published>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

async fn answer(State(published): State<Arc<Mutex<Published>>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let found = {
        let mut published = published.lock().unwrap();
        *published.fetches.entry(path.clone()).or_default() += 1;
        published.answers.get(&path).cloned()
    };
    let Some(found) = found else {
        return Response::builder().status(StatusCode::NOT_FOUND).body(Body::from("no such document")).unwrap();
    };
    tokio::time::sleep(found.delay).await;
    let mut response = Response::builder().status(found.status).body(Body::from(found.body)).unwrap();
    for (name, value) in found.headers {
        response.headers_mut().append(HeaderName::from_static(name), HeaderValue::from_str(&value).unwrap());
    }
    response
}

impl DocumentHost {
    pub async fn start() -> Self {
        mcp_oauth_adapters::install_tls_provider();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "mcp-oauth-server test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = std::env::temp_dir().join(format!("cimd-test-ca-{}.pem", mcp_oauth_domain::secret::generate_secret()));
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let mut tls = ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let published = Arc::new(Mutex::new(Published::default()));
        let app = axum::Router::new().fallback(answer).with_state(published.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let service = TowerToHyperService::new(app);
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { base: format!("https://localhost:{port}"), port, ca_file, published, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn publish(&self, path: &str, answer: Answer) {
        self.published.lock().unwrap().answers.insert(path.to_owned(), answer);
    }

    /// How many times `path` was fetched.
    pub fn fetches(&self, path: &str) -> usize {
        self.published.lock().unwrap().fetches.get(path).copied().unwrap_or(0)
    }

    /// The flags that make a server under test trust this host.
    pub fn trusting_flags(&self) -> Vec<String> {
        vec!["--cimd-ca-cert".into(), self.ca_file.display().to_string(), "--cimd-allow-private-networks".into(), "true".into()]
    }
}

/// A document shaped like one a real client publishes at `client_id`.
pub fn client_document(client_id: &str, name: &str, redirect_uris: &[&str]) -> Value {
    serde_json::json!({
        "client_id": client_id,
        "client_name": name,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}
