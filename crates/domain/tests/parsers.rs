//! Property tests of the parsers that take input straight from the network: whatever they are
//! given, they answer (never panic), and what they accept behaves as the rules say.

use mcp_oauth_domain::pkce::{CodeChallenge, CodeVerifier};
use mcp_oauth_domain::rate_limit::Quota;
use mcp_oauth_domain::redirect_uri::RedirectUri;
use mcp_oauth_domain::scope::Scope;
use proptest::prelude::*;

/// Strings shaped like redirect URIs, with the characters attackers reach for.
fn uri_like() -> impl Strategy<Value = String> {
    let scheme =
        prop_oneof![Just("https"), Just("http"), Just("com.example.app"), Just("javascript"), Just("HTTP"), Just("data")];
    let host = prop_oneof![
        Just("127.0.0.1".to_owned()),
        Just("localhost".to_owned()),
        Just("[::1]".to_owned()),
        Just("app.example".to_owned()),
        "[a-z0-9.-]{0,20}",
        "\\PC{0,12}"
    ];
    let rest = "[a-zA-Z0-9/?#&=%@:._~ \\\\-]{0,40}";
    (scheme, prop_oneof![Just("://"), Just(":"), Just(":///")], host, prop::option::of(1u32..70000), rest).prop_map(
        |(scheme, sep, host, port, rest)| match port {
            Some(port) => format!("{scheme}{sep}{host}:{port}{rest}"),
            None => format!("{scheme}{sep}{host}{rest}"),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn redirect_uris_parse_to_their_own_text_and_match_themselves(raw in prop_oneof![uri_like(), "\\PC{0,80}"]) {
        if let Ok(uri) = RedirectUri::parse(&raw) {
            prop_assert_eq!(uri.as_str(), raw.as_str(), "only normalized text is accepted");
            prop_assert!(uri.matches(&raw));
            prop_assert!(!uri.as_str().contains('#'), "no fragment");
            prop_assert!(!matches!(uri.scheme(), "javascript" | "data" | "vbscript" | "file"), "{}", uri.scheme());
            prop_assert!(uri.scheme() != "http" || mcp_oauth_domain::redirect_uri::is_loopback(&url::Url::parse(&raw).unwrap()));
        }
    }

    #[test]
    fn a_registered_uri_matches_no_other_host_or_path(raw in uri_like(), other in uri_like()) {
        if let (Ok(registered), Ok(presented)) = (RedirectUri::parse(&raw), RedirectUri::parse(&other))
            && registered.matches(presented.as_str())
        {
            let (a, b) = (url::Url::parse(&raw).unwrap(), url::Url::parse(&other).unwrap());
            prop_assert_eq!(a.host(), b.host());
            prop_assert_eq!(a.path(), b.path());
            prop_assert_eq!(a.query(), b.query());
            prop_assert!(a.port() == b.port() || registered.scheme() == "http", "only loopback http ignores the port");
        }
    }

    #[test]
    fn pkce_accepts_its_own_verifier_only(verifier in "[A-Za-z0-9._~-]{43,128}", other in "[A-Za-z0-9._~-]{43,128}") {
        let verifier = CodeVerifier::parse(&verifier).unwrap();
        let challenge = CodeChallenge::of(&verifier);
        prop_assert!(challenge.is_satisfied_by(&verifier));
        let other = CodeVerifier::parse(&other).unwrap();
        prop_assert_eq!(challenge.is_satisfied_by(&other), CodeChallenge::of(&other).as_str() == challenge.as_str());
    }

    #[test]
    fn pkce_parsers_refuse_what_rfc_7636_does(raw in "\\PC{0,140}", method in prop::option::of("\\PC{0,8}")) {
        if CodeVerifier::parse(&raw).is_ok() {
            prop_assert!((43..=128).contains(&raw.len()));
            prop_assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        }
        if CodeChallenge::parse(Some(&raw), method.as_deref()).is_ok() {
            prop_assert_eq!(method.as_deref().unwrap_or("S256"), "S256", "only S256");
        }
    }

    #[test]
    fn scopes_and_quotas_answer_whatever_they_are_given(raw in "\\PC{0,60}") {
        if let Ok(scope) = Scope::parse(&raw) {
            prop_assert_eq!(Scope::parse(&scope.to_string()).unwrap(), scope.clone(), "a scope prints to what parses back");
        }
        if let Ok(Some(quota)) = Quota::parse(&raw) {
            prop_assert!(quota.limit > 0 && !quota.window.is_zero());
        }
    }
}
