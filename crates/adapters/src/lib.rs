pub mod client_cache;
pub mod documents;
pub mod external;
pub mod memory;
pub mod outbound;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod upstream;

/// rustls needs one process-wide crypto provider; ring is the one this build carries.
/// Installing again is a harmless no-op.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
