//! Rate limits per client address on the endpoints an attacker would hammer: 429 with
//! `Retry-After` and `RateLimit` headers, the body in the endpoint's own format.
//!
//! The address is the socket's peer, unless that peer is a proxy listed in `TRUST_PROXY`: then
//! `Forwarded` (or, without it, `X-Forwarded-For`) is read from the right, skipping trusted proxies, so that a client cannot
//! lift its limit by sending the header itself. IPv6 clients are counted per /64, which one
//! host usually holds whole.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_oauth_domain::rate_limit::{Quota, RateLimitStore, Verdict};

/// Addresses and networks (`10.0.0.0/8`, `::1`) whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (address, bits) = entry.split_once('/').map_or((entry, None), |(a, b)| (a, Some(b)));
            let address: IpAddr = address.parse().map_err(|_| format!("TRUST_PROXY: `{entry}` is not an address or network"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("TRUST_PROXY: `{entry}` has a bad prefix"))?,
                None => max,
            };
            networks.push((address, bits));
        }
        Ok(Self(networks))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|(network, bits)| within(address, *network, *bits))
    }

    /// The client's address: the peer, or the nearest untrusted hop a trusted proxy names.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
        hops.into_iter().rev().find(|hop| !self.trusts(*hop)).unwrap_or(peer)
    }
}

/// The addresses a request passed through, nearest last: from `Forwarded` (RFC 7239) when the
/// request has one, else from `X-Forwarded-For`. Obfuscated and `unknown` hops are left out.
fn forwarded_hops(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    if headers.contains_key(header::FORWARDED) {
        let node = |element: &str| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then(|| node_address(value.trim().trim_matches('"')))?
            })
        };
        return values(header::FORWARDED).filter_map(node).collect();
    }
    values(header::HeaderName::from_static("x-forwarded-for")).filter_map(|hop| hop.trim().parse().ok()).collect()
}

/// `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]` or `[2001:db8::17]:4711`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.parse().ok().or_else(|| node.rsplit_once(':')?.0.parse().ok())
}

fn within(address: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (address, network, width) = match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(a.to_bits()), u128::from(n.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (a.to_bits(), n.to_bits(), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (address >> shift) == (network >> shift)
}

/// The key a client is counted under.
fn counted_as(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{:x}/64", v6.to_bits() >> 64),
        },
    }
}

/// How a refusal is written: as the endpoint writes its other errors.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    OAuthJson,
    Html,
    JsonRpc,
}

#[derive(Clone)]
pub struct RateLimit {
    pub store: Arc<dyn RateLimitStore>,
    pub trusted: TrustedProxies,
    /// Names the endpoint in keys and logs.
    pub scope: &'static str,
    pub quota: Quota,
    pub format: Format,
}

/// The `remaining` an inner limit already reported.
fn remaining_of(headers: &HeaderMap) -> Option<u32> {
    let state = headers.get("ratelimit")?.to_str().ok()?;
    state.split(", ").find_map(|part| part.strip_prefix("remaining="))?.parse().ok()
}

fn refusal(limit: &RateLimit, retry_after: Duration) -> Response {
    metrics::counter!("rate_limit_refusals_total", "limit" => limit.scope).increment(1);
    let seconds = retry_after.as_secs_f64().ceil() as u64;
    let message = format!("too many requests from your address; retry in {seconds} s");
    let mut response = match limit.format {
        Format::OAuthJson => super::error::plain_json_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", &message),
        Format::Html => crate::pages::error(StatusCode::TOO_MANY_REQUESTS, &message, Some("rate_limited")),
        Format::JsonRpc => {
            let body = mcp_oauth_resource::guard::jsonrpc_error(mcp_oauth_resource::guard::UNAVAILABLE, &message);
            (StatusCode::TOO_MANY_REQUESTS, body).into_response()
        }
    };
    mcp_oauth_resource::guard::refusal_headers(response.headers_mut(), &limit.quota, retry_after);
    response
}

pub async fn limit(State(limit): State<Arc<RateLimit>>, request: Request, next: Next) -> Response {
    let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
        return next.run(request).await;
    };
    let client = limit.trusted.client(peer, request.headers());
    let key = format!("{}:{}", limit.scope, counted_as(client));
    let verdict = match limit.store.hit(&key, limit.quota.window).await {
        Ok(count) => limit.quota.judge(count),
        Err(error) => {
            // Refusing everyone while the store is away would turn an outage into a lockout.
            tracing::warn!(scope = limit.scope, cause = %error, "rate limit not counted: storage unavailable");
            return next.run(request).await;
        }
    };
    match verdict {
        Verdict::Limited { retry_after } => {
            tracing::warn!(scope = limit.scope, client = %client, "rate limit exceeded");
            mcp_oauth_domain::audit::record(mcp_oauth_domain::audit::Event::RateLimited, "", "", "refused", limit.scope);
            refusal(&limit, retry_after)
        }
        Verdict::Allowed { remaining, resets_in } => {
            let mut response = next.run(request).await;
            // Of several limits on one route, the headers tell of the one nearest its end.
            let nearer = remaining_of(response.headers()).is_none_or(|reported| remaining < reported);
            if nearer {
                mcp_oauth_resource::guard::rate_limit_headers(response.headers_mut(), &limit.quota, remaining, resets_in);
            }
            response
        }
    }
}

/// Limits per client_id on the endpoints that authenticate clients, so that hosted MCP clients
/// sharing egress addresses are each counted on their own, and a stricter one on failed
/// authentications (secret guessing): past it, the client_id is refused until the window ends,
/// whoever sends it.
#[derive(Clone)]
pub struct ClientLimits {
    pub store: Arc<dyn RateLimitStore>,
    pub requests: Option<Quota>,
    pub failures: Option<Quota>,
}

impl ClientLimits {
    /// `Some(429)` when `client_id` may not be served now.
    pub async fn admit(&self, client_id: Option<&str>) -> Option<Response> {
        let client_id = client_id?;
        let refuse = |quota: Quota, retry_after: Duration, what: &str| {
            tracing::warn!(client_id, what, "client rate limit exceeded");
            mcp_oauth_domain::audit::record(mcp_oauth_domain::audit::Event::RateLimited, "", client_id, "refused", what);
            let limit = RateLimit {
                store: self.store.clone(),
                trusted: TrustedProxies::default(),
                scope: "client",
                quota,
                format: Format::OAuthJson,
            };
            refusal(&limit, retry_after)
        };
        if let Some(quota) = self.failures
            && let Ok(Some(count)) = self.store.peek(&format!("authfail:{client_id}")).await
            && count.used >= quota.limit
        {
            return Some(refuse(quota, count.resets_in.max(Duration::from_secs(1)), "failed authentications"));
        }
        let quota = self.requests?;
        match self.store.hit(&format!("client:{client_id}"), quota.window).await.map(|c| quota.judge(c)) {
            Ok(Verdict::Limited { retry_after }) => Some(refuse(quota, retry_after, "requests")),
            _ => None,
        }
    }

    /// Counts a failed authentication of `client_id`.
    pub async fn failed(&self, client_id: Option<&str>) {
        if let (Some(client_id), Some(quota)) = (client_id, self.failures)
            && let Err(error) = self.store.hit(&format!("authfail:{client_id}"), quota.window).await
        {
            tracing::warn!(cause = %error, "failed authentication not counted: storage unavailable");
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies_and_read_from_the_right() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let spoofed = forwarded("1.1.1.1, 198.51.100.7, 10.0.0.5");
        assert_eq!(trusted.client(stranger, &spoofed), stranger, "an untrusted peer's header is ignored");
        let expected: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(trusted.client(proxy, &spoofed), expected, "the nearest untrusted hop, not the client's own claim");
        assert_eq!(trusted.client(proxy, &HeaderMap::new()), proxy);
        assert_eq!(trusted.client("::1".parse().unwrap(), &forwarded("2001:db8::1")), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert_eq!(TrustedProxies::parse("").unwrap(), TrustedProxies::default());
    }

    #[test]
    fn the_forwarded_header_is_read_like_x_forwarded_for() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let mut headers = HeaderMap::new();
        let value = r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, For=198.51.100.7:80;by=10.0.0.1, for=10.0.0.5"#;
        headers.insert(header::FORWARDED, HeaderValue::from_static(value));
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.1"));
        assert_eq!(
            trusted.client(proxy, &headers),
            "198.51.100.7".parse::<IpAddr>().unwrap(),
            "Forwarded wins, read from the right"
        );
        headers.insert(header::FORWARDED, HeaderValue::from_static(r#"for="[2001:db8:cafe::17]:4711""#));
        assert_eq!(trusted.client(proxy, &headers), "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=unknown, for=_hidden"));
        assert_eq!(trusted.client(proxy, &headers), proxy, "no usable hop: the peer");
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(trusted.client(stranger, &headers), stranger);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a = counted_as("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(a, counted_as("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_ne!(a, counted_as("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(counted_as("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
    }

    proptest::proptest! {
        /// A forwarded chain from a trusted proxy never yields a trusted hop unless every hop
        /// is trusted, and never panics.
        #[test]
        fn any_forwarded_chain_gets_an_untrusted_client(chain in "[0-9a-f.:, ]{0,60}|\\PC{0,40}") {
            let trusted = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
            let proxy: IpAddr = "10.0.0.1".parse().unwrap();
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&chain) {
                headers.insert("x-forwarded-for", value);
            }
            let client = trusted.client(proxy, &headers);
            proptest::prop_assert!(client == proxy || !trusted.trusts(client));
            let _ = counted_as(client);
        }
    }
}
