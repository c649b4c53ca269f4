//! Opening an SMTP connection as the settings ask: TCP with TCP_NODELAY, TLS (none,
//! STARTTLS or implicit, see [`super::tls`]), EHLO, AUTH when a username is set, and a
//! time limit on the connection and on every command. What is said once the
//! connection is open is [`super::session`]'s.

use std::{fmt, io, time::Duration};

use lettre::transport::smtp::{
    authentication::{Credentials, Mechanism},
    client::{AsyncSmtpConnection, AsyncTokioStream},
    extension::ClientId,
};
use tokio::net::TcpStream;

use super::EmailSettings;
use super::{
    error::{limit, reply_text, Severity, SmtpError, Stage},
    session::Session,
    tls::{ImplicitTls, Security, TargetError},
};

/// The server a gateway sends to, prepared once from the settings.
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
        write!(
            f,
            "SmtpTarget({}:{} tls={})",
            self.host,
            self.port,
            self.security.mode()
        )
    }
}

impl SmtpTarget {
    pub fn new(settings: &EmailSettings) -> Result<SmtpTarget, TargetError> {
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
            security: Security::new(settings.tls, &settings.host, settings.ca_file.as_deref())?,
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
        let mut session = Session::new(connection, self.hello.clone(), self.command_timeout);
        if let Security::StartTls(tls) = &self.security {
            if !session.connection().can_starttls() {
                session.abort().await;
                return Err(SmtpError::client(
                    Stage::StartTls,
                    Severity::Permanent,
                    "the server does not offer STARTTLS, and email.tls = \"starttls\" forbids sending in plaintext",
                ));
            }
            let upgrade = session.connection().starttls(tls.clone(), &self.hello);
            limit(Stage::StartTls, self.command_timeout, upgrade).await?;
            on_step(
                Stage::StartTls,
                format!(
                    "TLS established; EHLO answered: {}",
                    session.connection().server_info()
                ),
            );
        }
        if let Some(credentials) = &self.credentials {
            let auth = session
                .connection()
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
