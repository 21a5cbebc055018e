//! The /mcp JSON-RPC edge, with a valid token: any body, with or without a session id, gets a
//! JSON-RPC answer (or a stream), never a panic, a 500 or an empty error body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_oauth_fuzz::{Call, harness};

fuzz_target!(|input: (bool, &[u8])| {
    let (in_session, body) = input;
    let harness = harness();
    let session = in_session.then_some(harness.session.as_str());
    let authorization = format!("Bearer {}", harness.token);
    harness.check(Call { path: "/mcp", content_type: "application/json", authorization: Some(&authorization), session, body });
});
