//! Opening an SMTP connection as the settings ask: TLS (none, STARTTLS or implicit,
//! never a silent fallback to plaintext), certificates checked against the system's
//! roots plus `email.ca_file`, AUTH when a username is set, and a time limit on the
//! connection and on every command.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use lettre::transport::smtp::{
    authentication::{Credentials, Mechanism},
    client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters},
    extension::ClientId,
    response::Response,
};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::settings::{EmailSettings, TlsMode};

/// Where a step of an SMTP conversation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Connect,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Rset,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

/// What the failure means for the e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A 4xx reply: try again later.
    Transient,
    /// A 5xx reply: this e-mail (or these settings) will not be accepted.
    Permanent,
    /// No reply: the connection failed, dropped or timed out. Try again later.
    Connection,
}

/// An SMTP failure: the stage, what it means, and the server's reply or the cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{stage}: {text}")]
pub struct SmtpError {
    pub stage: Stage,
    pub severity: Severity,
    /// The server's reply code, when it replied.
    pub code: Option<u16>,
    pub text: String,
}

impl SmtpError {
    fn from_lettre(stage: Stage, error: lettre::transport::smtp::Error) -> SmtpError {
        let code = error.status().and_then(|c| c.to_string().parse().ok());
        let severity = if error.is_permanent() {
            Severity::Permanent
        } else if error.is_transient() {
            Severity::Transient
        } else {
            Severity::Connection
        };
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let line = cause.to_string();
            if !text.contains(&line) {
                text.push_str(": ");
                text.push_str(&line);
            }
            source = cause.source();
        }
        SmtpError {
            stage,
            severity,
            code,
            text,
        }
    }

    fn timeout(stage: Stage, after: Duration) -> SmtpError {
        SmtpError {
            stage,
            severity: Severity::Connection,
            code: None,
            text: format!("no answer within {after:?}"),
        }
    }

    fn client(stage: Stage, severity: Severity, text: impl Into<String>) -> SmtpError {
        SmtpError {
            stage,
            severity,
            code: None,
            text: text.into(),
        }
    }
}

/// How a connection is secured, prepared once.
#[derive(Clone)]
enum Security {
    Plain,
    /// STARTTLS, with lettre's upgrade of the plain connection.
    StartTls(TlsParameters),
    /// TLS from the first byte, on the gateway's own socket.
    Implicit {
        connector: tokio_rustls::TlsConnector,
        name: ServerName<'static>,
    },
}

/// The server a gateway sends to, prepared once from the settings (the CA file is
/// read here, not at every connection).
#[derive(Clone)]
pub struct SmtpTarget {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    command_timeout: Duration,
    hello: ClientId,
}

impl fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = match self.security {
            Security::Plain => "none",
            Security::StartTls(_) => "starttls",
            Security::Implicit { .. } => "implicit",
        };
        write!(f, "SmtpTarget({}:{} tls={tls})", self.host, self.port)
    }
}

/// Why the settings cannot make a target (a bad CA file).
#[derive(Debug, Clone, thiserror::Error)]
#[error("email.ca_file: {0}")]
pub struct TargetError(String);

impl SmtpTarget {
    pub fn new(settings: &EmailSettings) -> Result<SmtpTarget, TargetError> {
        let ca_pem = match &settings.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| TargetError(format!("cannot read {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let no_certificate = |path: &std::path::Path, e: &dyn fmt::Display| {
            TargetError(format!("{} holds no PEM certificate: {e}", path.display()))
        };
        let security = match settings.tls {
            TlsMode::None => Security::Plain,
            TlsMode::StartTls => {
                let mut builder = TlsParameters::builder(settings.host.clone());
                if let (Some(pem), Some(path)) = (&ca_pem, &settings.ca_file) {
                    let certificate = Certificate::from_pem(pem).map_err(|e| no_certificate(path, &e))?;
                    builder = builder.add_root_certificate(certificate);
                }
                Security::StartTls(builder.build_rustls().map_err(|e| TargetError(e.to_string()))?)
            }
            TlsMode::Implicit => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                if let (Some(pem), Some(path)) = (&ca_pem, &settings.ca_file) {
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
                let name = ServerName::try_from(settings.host.clone()).map_err(|e| {
                    TargetError(format!(
                        "email.host `{}` cannot be checked against a certificate: {e}",
                        settings.host
                    ))
                })?;
                Security::Implicit {
                    connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                    name,
                }
            }
        };
        let credentials = settings.username.as_ref().map(|user| {
            Credentials::new(
                user.clone(),
                settings
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            )
        });
        Ok(SmtpTarget {
            host: settings.host.clone(),
            port: settings.port,
            security,
            credentials,
            connect_timeout: settings.connect_timeout,
            command_timeout: settings.command_timeout,
            hello: ClientId::default(),
        })
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects, says EHLO, secures the connection as configured, and authenticates.
    /// `on_step` hears each step that succeeded, with what the server said.
    pub async fn open(&self, mut on_step: impl FnMut(Stage, String)) -> Result<Session, SmtpError> {
        let socket = open_socket(&self.host, self.port, self.connect_timeout).await?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit { connector, name } => {
                let handshake = connector.connect(name.clone(), socket);
                let tls = tokio::time::timeout(self.connect_timeout, handshake)
                    .await
                    .map_err(|_| SmtpError::timeout(Stage::Connect, self.connect_timeout))?
                    .map_err(|e| {
                        SmtpError::client(
                            Stage::Connect,
                            Severity::Connection,
                            format!("TLS with {}:{} failed: {e}", self.host, self.port),
                        )
                    })?;
                Box::new(ImplicitTls(tls))
            }
            _ => Box::new(socket),
        };
        let greet = AsyncSmtpConnection::connect_with_transport(stream, &self.hello);
        let connection = limit(Stage::Connect, self.command_timeout, greet).await?;
        on_step(
            Stage::Connect,
            format!("EHLO answered: {}", connection.server_info()),
        );
        let mut session = Session {
            connection,
            command_timeout: self.command_timeout,
            hello: self.hello.clone(),
            pipelining: None,
        };
        if let Security::StartTls(tls) = &self.security {
            if !session.connection.can_starttls() {
                session.abort().await;
                return Err(SmtpError::client(
                    Stage::StartTls,
                    Severity::Permanent,
                    "the server does not offer STARTTLS, and email.tls = \"starttls\" forbids sending in plaintext",
                ));
            }
            let upgrade = session.connection.starttls(tls.clone(), &self.hello);
            limit(Stage::StartTls, self.command_timeout, upgrade).await?;
            on_step(
                Stage::StartTls,
                format!(
                    "TLS established; EHLO answered: {}",
                    session.connection.server_info()
                ),
            );
        }
        if let Some(credentials) = &self.credentials {
            let auth = session
                .connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials);
            match limit(Stage::Auth, self.command_timeout, auth).await {
                Ok(reply) => on_step(Stage::Auth, reply_text(&reply)),
                Err(error) => {
                    session.abort().await;
                    return Err(error);
                }
            }
        }
        Ok(session)
    }
}

/// Connects to the first address of `host` that answers, with TCP_NODELAY.
async fn open_socket(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, SmtpError> {
    let connect = async {
        let mut last = None;
        for address in tokio::net::lookup_host((host, port)).await? {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address")))
    };
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| SmtpError::timeout(Stage::Connect, timeout))?
        .map_err(|e| {
            SmtpError::client(
                Stage::Connect,
                Severity::Connection,
                format!("cannot connect to {host}:{port}: {e}"),
            )
        })?;
    // Every e-mail ends with a small write (CRLF . CRLF) that the server must see before
    // it answers. With Nagle's algorithm on, that write waits for the server's delayed
    // ACK of the body (40 ms on Linux), which caps a connection near 25 e-mails a second.
    stream.set_nodelay(true).map_err(|e| {
        SmtpError::client(
            Stage::Connect,
            Severity::Connection,
            format!("cannot set TCP_NODELAY: {e}"),
        )
    })?;
    Ok(stream)
}

/// A TLS stream as lettre's connection wants it.
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

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

/// Runs one SMTP step under a time limit.
async fn limit<T>(
    stage: Stage,
    after: Duration,
    step: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SmtpError> {
    match tokio::time::timeout(after, step).await {
        Err(_) => Err(SmtpError::timeout(stage, after)),
        Ok(Err(error)) => Err(SmtpError::from_lettre(stage, error)),
        Ok(Ok(value)) => Ok(value),
    }
}

/// `250 2.1.0 Ok` from a reply.
pub fn reply_text(reply: &Response) -> String {
    let lines: Vec<&str> = reply.message().collect();
    format!("{} {}", reply.code(), lines.join(" "))
}

/// An open, ready connection.
pub struct Session {
    connection: AsyncSmtpConnection,
    command_timeout: Duration,
    hello: ClientId,
    /// Whether the server announced PIPELINING; learnt before the first e-mail.
    pipelining: Option<bool>,
}

/// Several commands sent in one write (PIPELINING).
struct Pipelined(String);

impl fmt::Display for Pipelined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Session {
    /// Sends one SMTP command and reads the reply.
    pub async fn command(&mut self, stage: Stage, command: impl fmt::Display) -> Result<Response, SmtpError> {
        let timeout = self.command_timeout;
        limit(stage, timeout, self.connection.command(command)).await
    }

    /// Sends one e-mail: MAIL FROM, RCPT TO for each recipient, DATA. After a refusal
    /// the transaction is reset so the connection can carry the next e-mail.
    pub async fn send(
        &mut self,
        envelope: &lettre::address::Envelope,
        bytes: &[u8],
    ) -> Result<Response, SmtpError> {
        use lettre::transport::smtp::{
            commands::{Data, Mail, Rcpt},
            extension::{Extension, MailBodyParameter, MailParameter},
        };
        let mut parameters = Vec::new();
        let non_ascii_address = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii_address {
            if !self
                .connection
                .server_info()
                .supports_feature(Extension::SmtpUtfEight)
            {
                return Err(SmtpError::client(
                    Stage::MailFrom,
                    Severity::Permanent,
                    "an address is not ASCII and the server does not support SMTPUTF8",
                ));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii()
            && self
                .connection
                .server_info()
                .supports_feature(Extension::EightBitMime)
        {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let result = if self.pipelining().await? {
            self.pipelined_envelope(envelope, parameters, bytes).await
        } else {
            async {
                self.command(Stage::MailFrom, Mail::new(envelope.from().cloned(), parameters))
                    .await?;
                for recipient in envelope.to() {
                    self.command(Stage::RcptTo, Rcpt::new(recipient.clone(), vec![]))
                        .await?;
                }
                self.command(Stage::Data, Data).await?;
                let timeout = self.command_timeout;
                limit(Stage::Data, timeout, self.connection.message(bytes)).await
            }
            .await
        };
        if let Err(error) = &result {
            if error.severity != Severity::Connection && !self.connection.has_broken() {
                let _ = self
                    .command(Stage::Rset, lettre::transport::smtp::commands::Rset)
                    .await;
            }
        }
        result
    }

    /// Whether the server announced PIPELINING. lettre keeps only the EHLO keywords it
    /// knows, so the first e-mail of a connection asks again (one round trip, where
    /// pipelining saves two on every e-mail).
    async fn pipelining(&mut self) -> Result<bool, SmtpError> {
        if let Some(known) = self.pipelining {
            return Ok(known);
        }
        let reply = self
            .command(
                Stage::MailFrom,
                lettre::transport::smtp::commands::Ehlo::new(self.hello.clone()),
            )
            .await?;
        let known = reply.message().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
        });
        self.pipelining = Some(known);
        Ok(known)
    }

    /// MAIL, every RCPT and DATA in one write (RFC 2920), then their replies in order,
    /// then the message. The first refusal is the e-mail's error; every reply is still
    /// read so that the conversation stays in step.
    async fn pipelined_envelope(
        &mut self,
        envelope: &lettre::address::Envelope,
        parameters: Vec<lettre::transport::smtp::extension::MailParameter>,
        bytes: &[u8],
    ) -> Result<Response, SmtpError> {
        use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
        let mut commands = Mail::new(envelope.from().cloned(), parameters).to_string();
        for recipient in envelope.to() {
            commands.push_str(&Rcpt::new(recipient.clone(), vec![]).to_string());
        }
        commands.push_str(&Data.to_string());
        let timeout = self.command_timeout;
        let mut refusal = self.command(Stage::MailFrom, Pipelined(commands)).await.err();
        if refusal
            .as_ref()
            .is_some_and(|e| e.severity == Severity::Connection)
        {
            return Err(refusal.expect("checked"));
        }
        for _ in envelope.to() {
            if let Err(error) = limit(Stage::RcptTo, timeout, self.connection.read_response()).await {
                if error.severity == Severity::Connection {
                    return Err(refusal.unwrap_or(error));
                }
                refusal.get_or_insert(error);
            }
        }
        let data = limit(Stage::Data, timeout, self.connection.read_response()).await;
        match (refusal, data) {
            (None, Ok(_)) => limit(Stage::Data, timeout, self.connection.message(bytes)).await,
            (None, Err(error)) => Err(error),
            (Some(refusal), data) => {
                // DATA was accepted although part of the envelope was not (another
                // recipient was taken): any message now would reach that recipient, so
                // the connection is dropped instead, which discards the transaction.
                if data.is_ok() {
                    self.abort().await;
                }
                Err(refusal)
            }
        }
    }

    /// Ends the session politely.
    pub async fn quit(mut self) -> Result<Response, SmtpError> {
        let timeout = self.command_timeout;
        limit(Stage::Quit, timeout, self.connection.quit()).await
    }

    /// Closes the connection without waiting for anything.
    pub async fn abort(&mut self) {
        let _ = tokio::time::timeout(self.command_timeout, self.connection.abort()).await;
    }

    /// Whether the connection can carry another command.
    pub fn is_usable(&self) -> bool {
        !self.connection.has_broken()
    }
}
