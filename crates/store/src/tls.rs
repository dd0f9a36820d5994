//! TLS for PostgreSQL connections, chosen by the URL's `sslmode` as libpq does.
//!
//! - `sslmode=require`: every connection (the pool's and the commit connection) is encrypted
//!   with rustls (TLS 1.2 or 1.3, the `ring` provider); a server that does not offer TLS is
//!   refused. As in libpq's `require`, the server's certificate is not checked against a CA:
//!   the link is private from eavesdroppers, and the server is trusted by its address (the
//!   usual setup inside a private network; the handshake signature is still verified).
//! - `sslmode=disable`, or no `sslmode` (libpq's default `prefer`): plain TCP or a Unix
//!   socket, as before. `prefer` does not opportunistically encrypt: ask for `require`.

use crate::error::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_postgres::config::SslMode;

/// How store connections are made.
#[derive(Clone)]
pub(crate) enum Tls {
    /// Plain TCP or a Unix socket.
    Plain,
    /// rustls, for `sslmode=require`.
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Tls {
    /// The TLS that `config`'s `sslmode` asks for.
    pub(crate) fn for_config(config: &tokio_postgres::Config) -> Result<Tls, StoreError> {
        match config.get_ssl_mode() {
            SslMode::Require => Ok(Tls::Rustls(rustls_connector()?)),
            _ => Ok(Tls::Plain),
        }
    }

    /// Whether connections are encrypted.
    pub(crate) fn encrypted(&self) -> bool {
        matches!(self, Tls::Rustls(_))
    }
}

fn rustls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|_| StoreError::Unavailable("TLS is not available".into()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// libpq's `require`: any server certificate, a verified handshake signature.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
