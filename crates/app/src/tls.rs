//! TLS for the outbound HTTP clients (the oracle's, alloy's JSON-RPC):
//! rustls on ring, the one crypto library in the build. reqwest is built
//! without a provider of its own, so the process installs ring's before
//! building a client.

/// Installs ring as the process's rustls provider (once; later calls,
/// and a provider installed by someone else first, are fine).
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_build_once_the_provider_is_installed() {
        super::install_crypto();
        super::install_crypto();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        assert!(reqwest::Client::builder().build().is_ok());
    }
}
