//! The split deployment: the authorization server and the MCP server apart, with our own
//! authorization server (introspection) and with a JWT-issuing provider.

mod introspection;
mod introspection_cache;
mod jwt;
