//! Support for the black-box tests in `tests/`: the storage contract suite that every adapter
//! runs, and helpers that drive the server over real HTTP on loopback.

pub mod contract;
pub mod documents;
pub mod forwarder;
pub mod http;
pub mod idp;
pub mod jwt_provider;
pub mod mcp;
pub mod process;
pub mod rate_limit_contract;
pub mod redis_server;
pub mod session_contract;
pub mod upstream;
