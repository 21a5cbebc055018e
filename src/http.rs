//! Filled in with the HTTP tests.
