//! Redis storage at the application level: round trips, TLS and passwords, outages, and
//! several instances sharing one Redis.

mod faults;
mod multi_instance;
mod multi_instance_mcp;
mod round_trips;
mod tls_and_auth;
