//! One open SMTP connection, and what is said on it: an e-mail's MAIL FROM, RCPT TO
//! and DATA (in one write when the server announced PIPELINING), RSET after a
//! refusal, QUIT at the end. How the connection was opened is [`super::connect`]'s.
//!
//! lettre's [`AsyncSmtpConnection`] does the framing (one reply read per call, from a
//! buffered reader, so pipelined replies that arrive together are read one by one)
//! and the dot-stuffing of the message; this file decides what to send and when.

use std::{fmt, time::Duration};

use lettre::{
    address::Envelope,
    transport::smtp::{
        client::AsyncSmtpConnection,
        commands::{Data, Ehlo, Mail, Rcpt, Rset},
        extension::{ClientId, Extension, MailBodyParameter, MailParameter},
        response::Response,
    },
};

use super::error::{limit, Severity, SmtpError, Stage};

/// An open, ready connection.
pub struct Session {
    connection: AsyncSmtpConnection,
    /// The EHLO name, for asking the server's extensions again.
    hello: ClientId,
    command_timeout: Duration,
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
    /// A session on a connection that has been greeted (EHLO answered).
    pub(super) fn new(
        connection: AsyncSmtpConnection,
        hello: ClientId,
        command_timeout: Duration,
    ) -> Session {
        Session {
            connection,
            hello,
            command_timeout,
            pipelining: None,
        }
    }

    /// The connection, for the steps of opening it (STARTTLS, AUTH).
    pub(super) fn connection(&mut self) -> &mut AsyncSmtpConnection {
        &mut self.connection
    }

    /// Sends one SMTP command and reads the reply.
    pub async fn command(&mut self, stage: Stage, command: impl fmt::Display) -> Result<Response, SmtpError> {
        let timeout = self.command_timeout;
        limit(stage, timeout, self.connection.command(command)).await
    }

    /// Sends one e-mail: MAIL FROM, RCPT TO for each recipient, DATA. After a refusal
    /// the transaction is reset so the connection can carry the next e-mail.
    pub async fn send(&mut self, envelope: &Envelope, bytes: &[u8]) -> Result<Response, SmtpError> {
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
                let _ = self.command(Stage::Rset, Rset).await;
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
            .command(Stage::MailFrom, Ehlo::new(self.hello.clone()))
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
        envelope: &Envelope,
        parameters: Vec<MailParameter>,
        bytes: &[u8],
    ) -> Result<Response, SmtpError> {
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
