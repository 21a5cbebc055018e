//! Client authentication at /token: any Authorization header, with a body that names or does
//! not name the client, gets an OAuth answer; a wrong secret never authenticates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_oauth_fuzz::{Call, harness};

fuzz_target!(|input: (&str, &[u8])| {
    let (authorization, body) = input;
    let harness = harness();
    harness.check(Call {
        path: "/token",
        content_type: "application/x-www-form-urlencoded",
        authorization: Some(authorization),
        session: None,
        body,
    });
    harness.refuses_wrong_secret(authorization);
});
