//! TLS for SMTP, prepared once from the settings: the system's roots plus
//! `email.ca_file`, lettre's parameters for STARTTLS, and a rustls connector for
//! implicit TLS on the gateway's own socket. Never a silent fallback to plaintext.

use std::{
    fmt, io,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use lettre::transport::smtp::client::{AsyncTokioStream, Certificate, TlsParameters};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// `email.tls`: how the connection to the SMTP server is secured. Read from the
/// settings as `none`, `starttls` or `implicit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a relay on the same host or a trusted network).
    None,
    /// Plain, then upgraded with STARTTLS.
    StartTls,
    /// TLS from the first byte (usually port 465).
    Implicit,
}

/// How a connection is secured.
#[derive(Clone)]
pub(super) enum Security {
    Plain,
    /// STARTTLS, with lettre's upgrade of the plain connection.
    StartTls(TlsParameters),
    /// TLS from the first byte, on the gateway's own socket.
    Implicit {
        connector: tokio_rustls::TlsConnector,
        name: ServerName<'static>,
    },
}

/// Why the settings cannot make a target (a bad CA file, a host no certificate can name).
#[derive(Debug, Clone, thiserror::Error)]
#[error("email.ca_file: {0}")]
pub struct TargetError(String);

impl Security {
    /// The security `email.tls` asks for, for a server named `host`, trusting
    /// `ca_file` (`email.ca_file`) besides the system's roots; the CA file is read
    /// here, not at every connection.
    pub(super) fn new(tls: TlsMode, host: &str, ca_file: Option<&Path>) -> Result<Security, TargetError> {
        let ca_pem = match ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| TargetError(format!("cannot read {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let no_certificate = |path: &Path, e: &dyn fmt::Display| {
            TargetError(format!("{} holds no PEM certificate: {e}", path.display()))
        };
        Ok(match tls {
            TlsMode::None => Security::Plain,
            TlsMode::StartTls => {
                let mut builder = TlsParameters::builder(host.to_string());
                if let (Some(pem), Some(path)) = (&ca_pem, ca_file) {
                    let certificate = Certificate::from_pem(pem).map_err(|e| no_certificate(path, &e))?;
                    builder = builder.add_root_certificate(certificate);
                }
                Security::StartTls(builder.build_rustls().map_err(|e| TargetError(e.to_string()))?)
            }
            TlsMode::Implicit => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                if let (Some(pem), Some(path)) = (&ca_pem, ca_file) {
                    let certificates = CertificateDer::pem_slice_iter(pem)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| no_certificate(path, &e))?;
                    if certificates.is_empty() {
                        return Err(no_certificate(path, &"no certificate found"));
                    }
                    for certificate in certificates {
                        roots.add(certificate).map_err(|e| no_certificate(path, &e))?;
                    }
                }
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| TargetError(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = ServerName::try_from(host.to_string()).map_err(|e| {
                    TargetError(format!(
                        "email.host `{}` cannot be checked against a certificate: {e}",
                        host
                    ))
                })?;
                Security::Implicit {
                    connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                    name,
                }
            }
        })
    }

    /// `none`, `starttls` or `implicit`, as in the settings.
    pub(super) fn mode(&self) -> &'static str {
        match self {
            Security::Plain => "none",
            Security::StartTls(_) => "starttls",
            Security::Implicit { .. } => "implicit",
        }
    }
}

/// A TLS stream as lettre's connection wants it.
#[derive(Debug)]
pub(super) struct ImplicitTls(pub(super) tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
