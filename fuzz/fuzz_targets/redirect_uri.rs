//! Redirect-URI parsing and matching: never a panic; an accepted URI is its own text, matches
//! itself, and matches nothing that differs from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_oauth_domain::redirect_uri::{RedirectKind, RedirectUri};

fuzz_target!(|input: (&str, &str)| {
    let (registered, presented) = input;
    if let Ok(uri) = RedirectUri::parse(registered) {
        assert_eq!(uri.as_str(), registered);
        assert!(uri.matches(registered));
        if uri.matches(presented) && presented != registered {
            // Only a loopback URI may differ, and only in its port (RFC 8252 section 7.3).
            assert_eq!(uri.kind(), RedirectKind::LoopbackHttp, "{registered} matched {presented}");
            let other = RedirectUri::parse(presented).expect("a match parses");
            assert_eq!(other.kind(), RedirectKind::LoopbackHttp);
        }
    }
});
