//! PKCE values: never a panic; a verifier only verifies against its own S256 challenge.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_oauth_domain::pkce::{CodeChallenge, CodeVerifier};

fuzz_target!(|input: (&str, &str, Option<&str>, &str)| {
    let (verifier, challenge, method, other) = input;
    let parsed = CodeChallenge::parse(Some(challenge), method);
    if let Ok(verifier) = CodeVerifier::parse(verifier) {
        let own = CodeChallenge::of(&verifier);
        assert!(own.is_satisfied_by(&verifier));
        if let Ok(other) = CodeVerifier::parse(other)
            && CodeChallenge::of(&other).as_str() != own.as_str()
        {
            assert!(!own.is_satisfied_by(&other));
        }
        if let Ok(parsed) = parsed {
            assert_eq!(parsed.is_satisfied_by(&verifier), parsed.as_str() == own.as_str());
        }
    }
});
