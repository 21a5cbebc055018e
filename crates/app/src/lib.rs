//! mcp-oauth-server: an OAuth 2.1 authorization server and MCP resource server.
//!
//! `config` reads the settings, `http` is the HTTP surface, `mcp` the MCP server, and
//! `server` wires them to a storage adapter and runs them.

pub mod admin;
pub mod config;
pub mod http;
pub mod log_time;
mod metered;
mod metric_handles;
pub mod pages;
pub mod server;
pub mod shutdown;
mod upstream_account;

pub use server::serve_with;
