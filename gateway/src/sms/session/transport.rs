//! Opening a session's connection: TCP, or TLS from the first byte verified against
//! the system's trusted roots (the roots the gateway's HTTP client trusts too).

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use plugin_api::SessionPlan;
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// A session's connection, plain or TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects as `plan` says, within `limit`. The error is for an admin: where, and why.
pub(super) async fn connect(plan: &SessionPlan, limit: Duration) -> Result<Stream, String> {
    let address = format!("{}:{}", plan.host, plan.port);
    let tcp = tokio::time::timeout(limit, TcpStream::connect(&address))
        .await
        .map_err(|_| format!("cannot connect to {address}: no answer within {limit:?}"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    // Session protocols write small PDUs and wait for answers: no Nagle delay.
    let _ = tcp.set_nodelay(true);
    if !plan.tls {
        return Ok(Stream::Plain(tcp));
    }
    let name = ServerName::try_from(plan.host.to_string())
        .map_err(|e| format!("{} cannot be checked against a certificate: {e}", plan.host))?;
    let tls = tokio::time::timeout(limit, connector().connect(name, tcp))
        .await
        .map_err(|_| format!("TLS with {address}: no handshake within {limit:?}"))?
        .map_err(|e| format!("TLS with {address}: {e}"))?;
    Ok(Stream::Tls(Box::new(tls)))
}

/// One TLS configuration for every session: the system's roots, read once.
fn connector() -> tokio_rustls::TlsConnector {
    static CONNECTOR: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        })
        .clone()
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
