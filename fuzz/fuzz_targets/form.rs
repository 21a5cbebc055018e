//! The form parser behind /token, /revoke and /introspect: any body gets an answer in the
//! protocol's format, never a panic, a 500 or an empty body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_oauth_fuzz::{Call, harness};

fuzz_target!(|input: (u8, &[u8])| {
    let (route, body) = input;
    let path = ["/token", "/revoke", "/introspect", "/register"][usize::from(route % 4)];
    let content_type = if path == "/register" { "application/json" } else { "application/x-www-form-urlencoded" };
    harness().check(Call { path, content_type, authorization: None, session: None, body });
});
