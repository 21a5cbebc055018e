//! Every OAuth endpoint and its error paths, over real HTTP on loopback.

mod authorize;
mod documents;
mod edge;
mod end_to_end;
mod introspect_revoke;
mod metadata_guard;
mod real_clients;
mod register;
mod registration_policy;
mod token;
