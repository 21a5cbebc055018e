//! Client ID Metadata Documents fetched over https ([`DocumentFetcher`]), defended against
//! server-side request forgery: a host is resolved once, by this module's resolver, which
//! refuses every answer that is not a public address, and the connection goes to the address
//! it checked; an address written in the URL is checked the same way. No redirect is
//! followed, no proxy used, and the answer is bounded in size and time.

mod address;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_domain::metadata_document::{
    Caching, DocumentFetcher, DocumentUrl, FetchError, FetchedDocument, MAX_DOCUMENT_BYTES,
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use url::Host;

pub use address::is_public;

/// How documents are fetched.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Bound on the whole fetch: connecting, TLS, and the answer.
    pub timeout: Duration,
    /// `CIMD_ALLOW_PRIVATE_NETWORKS`: fetch from any address (private deployments, tests).
    pub allow_private_networks: bool,
    /// Certificates trusted besides the public roots, for a private CA ([`parse_roots`]).
    pub extra_roots: Vec<reqwest::Certificate>,
}

/// The certificates of a PEM bundle (`CIMD_CA_CERT`).
pub fn parse_roots(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
    if roots.is_empty() { Err("no certificate in the file".into()) } else { Ok(roots) }
}

/// The reason an address was refused, carried through reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, which is not a public address")]
struct AddressRefused {
    host: String,
    address: IpAddr,
}

/// Resolves names for the fetcher's client, refusing any name with a non-public address among
/// its answers: the client connects only to what this returned, so what was checked is what is
/// reached, however the name's records change.
struct PublicAddresses {
    allow_private_networks: bool,
}

impl Resolve for PublicAddresses {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private_networks;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(refused) = addresses.iter().find(|a| !allow_private && !is_public(a.ip())) {
                return Err(Box::new(AddressRefused { host, address: refused.ip() }) as _);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

pub struct HttpDocumentFetcher {
    http: reqwest::Client,
    allow_private_networks: bool,
}

impl HttpDocumentFetcher {
    pub fn new(settings: FetchSettings) -> Result<Self, String> {
        crate::install_tls_provider();
        let resolver = PublicAddresses { allow_private_networks: settings.allow_private_networks };
        let http = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .dns_resolver(Arc::new(resolver))
            .tls_certs_merge(settings.extra_roots)
            .user_agent(concat!("mcp-oauth-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the metadata document client cannot be built: {e}"))?;
        Ok(Self { http, allow_private_networks: settings.allow_private_networks })
    }

    /// An address written in the URL never meets the resolver: it is checked here.
    fn check_literal(&self, url: &DocumentUrl) -> Result<(), FetchError> {
        let address = match url.url().host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if self.allow_private_networks || is_public(address) {
            Ok(())
        } else {
            Err(FetchError::Refused(format!("{address} is not a public address")))
        }
    }
}

/// What `Cache-Control` allows: `s-maxage` over `max-age` (this server's cache is shared by
/// its instances), and `no-store` or `no-cache` over both.
fn caching(headers: &HeaderMap) -> Caching {
    let directives: Vec<String> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives.iter().any(|d| d == "no-store" || d == "no-cache") {
        return Caching::NoStore;
    }
    let seconds = |name: &str| {
        directives.iter().find_map(|d| d.strip_prefix(name)?.strip_prefix('=')?.trim_matches('"').parse::<u64>().ok())
    };
    match seconds("s-maxage").or_else(|| seconds("max-age")) {
        Some(0) => Caching::NoStore,
        Some(age) => Caching::MaxAge(Duration::from_secs(age)),
        None => Caching::Unspecified,
    }
}

/// Names what went wrong in a request, down to a refused address if that was it.
fn failure(error: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<AddressRefused>() {
            return FetchError::Refused(refused.to_string());
        }
        source = cause.source();
    }
    if error.is_timeout() {
        FetchError::Unreachable("its host did not answer in time".into())
    } else if error.is_connect() {
        FetchError::Unreachable("its host could not be reached".into())
    } else {
        FetchError::Unreachable(format!("the request failed ({})", error.without_url()))
    }
}

#[async_trait]
impl DocumentFetcher for HttpDocumentFetcher {
    async fn fetch(&self, url: &DocumentUrl) -> Result<FetchedDocument, FetchError> {
        self.check_literal(url)?;
        let request = self.http.get(url.url().clone()).header(ACCEPT, "application/json");
        let mut response = crate::outbound::send("client_metadata_document", "fetch", request).await.map_err(failure)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Rejected(format!("its host answered with a redirect ({status}), which is not followed")));
        }
        if status.is_server_error() {
            return Err(FetchError::Unreachable(format!("its host answered {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Rejected(format!("its host answered {status}")));
        }
        let too_large = || FetchError::Rejected(format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"));
        if response.content_length().is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64) {
            return Err(too_large());
        }
        let caching = caching(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failure)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchedDocument { body, caching })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn cache_control_is_read_as_a_shared_cache_would() {
        assert_eq!(caching(&HeaderMap::new()), Caching::Unspecified);
        assert_eq!(caching(&with("public, max-age=600")), Caching::MaxAge(Duration::from_secs(600)));
        assert_eq!(caching(&with("max-age=600, s-maxage=60")), Caching::MaxAge(Duration::from_secs(60)));
        assert_eq!(caching(&with("max-age=600, no-store")), Caching::NoStore);
        assert_eq!(caching(&with("No-Cache")), Caching::NoStore);
        assert_eq!(caching(&with("max-age=0")), Caching::NoStore);
        assert_eq!(caching(&with("max-age=soon")), Caching::Unspecified);
    }
}
