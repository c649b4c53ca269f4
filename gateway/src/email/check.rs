//! *Check SMTP connection*: connect, EHLO, TLS, AUTH, `MAIL FROM` the default sender,
//! `RCPT TO` the check address, then RSET and QUIT, sending nothing. Each step is
//! reported with the server's reply; the check stops at the first step that fails.
//! With `email.dkim` set, a last step says whether the private key matches the
//! published public key (`email.dkim.public_key`), or which record to publish.

use lettre::{
    transport::smtp::commands::{Mail, Quit, Rcpt, Rset},
    Address,
};
use serde::Serialize;

use super::EmailSettings;
use super::{
    connect::SmtpTarget,
    error::{reply_text, Stage},
};

/// One step of the check.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    pub step: Stage,
    pub ok: bool,
    /// The server's reply code, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The server's reply, or why the step failed.
    pub reply: String,
}

/// The whole check.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub ok: bool,
    pub server: String,
    pub steps: Vec<Step>,
    /// The step that failed, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<Stage>,
}

fn passed(step: Stage, reply: String) -> Step {
    let code = reply.get(..3).and_then(|c| c.parse().ok());
    Step {
        step,
        ok: true,
        code,
        reply,
    }
}

/// Runs the check against the server the settings name.
pub async fn check(settings: &EmailSettings, target: &SmtpTarget) -> Report {
    let mut steps = Vec::new();
    let failed = |mut steps: Vec<Step>, step: Stage, code: Option<u16>, reply: String| {
        steps.push(Step {
            step,
            ok: false,
            code,
            reply,
        });
        Report {
            ok: false,
            server: target.address(),
            steps,
            failed_step: Some(step),
        }
    };
    let mut session = match target.open(|stage, reply| steps.push(passed(stage, reply))).await {
        Ok(session) => session,
        Err(error) => return failed(steps, error.stage, error.code, error.text),
    };

    let from = match settings.default_from.as_deref().map(mailbox_address) {
        Some(Ok(address)) => address,
        Some(Err(reason)) => return failed(steps, Stage::MailFrom, None, reason),
        None => {
            return failed(
                steps,
                Stage::MailFrom,
                None,
                "email.default_from is not set".into(),
            )
        }
    };
    match session
        .command(Stage::MailFrom, Mail::new(Some(from), vec![]))
        .await
    {
        Ok(reply) => steps.push(passed(Stage::MailFrom, reply_text(&reply))),
        Err(error) => {
            session.abort().await;
            return failed(steps, Stage::MailFrom, error.code, error.text);
        }
    }

    let to = match settings.check_address.as_deref().map(mailbox_address) {
        Some(Ok(address)) => address,
        Some(Err(reason)) => return failed(steps, Stage::RcptTo, None, reason),
        None => {
            return failed(
                steps,
                Stage::RcptTo,
                None,
                "email.check_address is not set".into(),
            )
        }
    };
    match session.command(Stage::RcptTo, Rcpt::new(to, vec![])).await {
        Ok(reply) => steps.push(passed(Stage::RcptTo, reply_text(&reply))),
        Err(error) => {
            session.abort().await;
            return failed(steps, Stage::RcptTo, error.code, error.text);
        }
    }

    for (stage, result) in [
        (Stage::Rset, session.command(Stage::Rset, Rset).await),
        (Stage::Quit, session.command(Stage::Quit, Quit).await),
    ] {
        match result {
            Ok(reply) => steps.push(passed(stage, reply_text(&reply))),
            Err(error) => return failed(steps, stage, error.code, error.text),
        }
    }
    if let Some(dkim) = &settings.dkim {
        match dkim.check() {
            Ok(reply) => steps.push(Step {
                step: Stage::Dkim,
                ok: true,
                code: None,
                reply,
            }),
            Err(reply) => return failed(steps, Stage::Dkim, None, reply),
        }
    }
    Report {
        ok: true,
        server: target.address(),
        steps,
        failed_step: None,
    }
}

fn mailbox_address(text: &str) -> Result<Address, String> {
    super::message::parse_mailbox(text).map(|mailbox| mailbox.email)
}
