//! What went wrong in an SMTP conversation: the step it failed at, and whether trying
//! again later can help. Connecting ([`super::connect`]), the session
//! ([`super::session`]), the engine and the connection check all speak this one type.

use std::{fmt, future::Future, time::Duration};

use lettre::transport::smtp::response::Response;

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
    /// The connection check's last step: the DKIM key against its published record.
    /// Never an SMTP failure.
    Dkim,
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
            Stage::Dkim => "DKIM",
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
    pub(super) fn from_lettre(stage: Stage, error: lettre::transport::smtp::Error) -> SmtpError {
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

    pub(super) fn timeout(stage: Stage, after: Duration) -> SmtpError {
        SmtpError {
            stage,
            severity: Severity::Connection,
            code: None,
            text: format!("no answer within {after:?}"),
        }
    }

    /// A failure the gateway found itself, with no reply from the server.
    pub(super) fn client(stage: Stage, severity: Severity, text: impl Into<String>) -> SmtpError {
        SmtpError {
            stage,
            severity,
            code: None,
            text: text.into(),
        }
    }
}

/// Runs one SMTP step under a time limit.
pub(super) async fn limit<T>(
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
