//! The `http` SMS module: one provider with a simple REST or form API, described
//! entirely by the configuration blob — the request to make for an SMS, how to read
//! the answer, and how to read the provider's callbacks.
//!
//! It suits providers whose API is "one HTTP request an SMS, an id in the answer". It
//! is not for providers that need a signed request (HMAC over the body), an OAuth
//! token exchange, or several requests an SMS: those get a module of their own, such as
//! `twilio` (start from `template`).
//!
//! Like every module it makes no connection itself: `send` returns the request, the
//! gateway performs it and hands back the answer (see `plugin-api`, "Who does the I/O").
//!
//! # The blob
//!
//! A JSON object; unknown keys are refused, and every error names the key and why.
//!
//! | key | required | meaning |
//! | --- | --- | --- |
//! | `url` | yes | `http://` or `https://`; placeholders allowed after the host, their values percent-encoded |
//! | `method` | | `POST` (default), `GET`, `PUT`, ... in capitals; `GET` and `HEAD` take no `body` |
//! | `headers` | | `{"Name": "value"}`, sent in this order; values may use placeholders, and are secret |
//! | `basic_auth` | | `{"user": "…", "password": "…"}`: an `Authorization: Basic` header |
//! | `secrets` | | `{"NAME": "value"}`: credentials that `url` and `body` use as `{{secrets.NAME}}` |
//! | `body` | | `{"type": "json", "template": ANY}` or `{"type": "form", "fields": {"To": "{{to}}", …}}` |
//! | `success_status` | | statuses that mean "accepted": codes, classes and ranges (`201`, `"2xx"`, `"200-204"`); default `["2xx"]` |
//! | `transient_status` | | statuses worth a retry; default `[408, 429, "5xx"]` |
//! | `answer_status` | | `{"pointer", "success_values", "transient_values", "detail_pointer"}`: a status inside a successful answer |
//! | `message_id_pointer` | | JSON pointer (RFC 6901) to the provider's id in the answer, e.g. `/messages/0/message-id` |
//! | `message_id_header` | | or: the answer header holding the id (at most one of the two) |
//! | `callbacks` | | how to read the provider's callbacks (below) |
//!
//! **Placeholders** (in `url`, `headers` and the strings of `body`): `{{to}}` (E.164,
//! `+447700900123`), `{{to_digits}}` (`447700900123`), `{{sender}}`,
//! `{{sender_digits}}` (a leading `+` dropped), `{{text}}`, `{{id}}` (the gateway's
//! message id, for providers that echo a client reference) and `{{secrets.NAME}}`.
//! A value is escaped for where it goes: percent-encoded in `url`, a JSON string in a
//! `json` body (the template is JSON, so a quote in the text stays inside its string),
//! `application/x-www-form-urlencoded` in a `form` body. `Content-Type` is set from
//! `body` unless `headers` sets it. A header built from `{{text}}` that would hold a
//! line break refuses that SMS rather than send a second header. Inserted values are
//! never read again for placeholders; there is no escape for a literal `{{`.
//!
//! **Reading the answer.** A status in `success_status` is an acceptance (checked
//! first); one in `transient_status` is a transient error, which the gateway retries;
//! anything else is a permanent error. Both errors quote the status and at most 200
//! characters of the body. On success the message id is read from
//! `message_id_pointer` (string or number) or `message_id_header`; if it is missing the
//! send fails for good saying so (the provider may have sent it: a retry could send it
//! twice). With neither key, the gateway's own id is the provider id. `answer_status`
//! serves providers that answer 200 even when they refuse (Vonage): the value at its
//! `pointer` must be one of `success_values`; one of `transient_values` is a transient
//! error; anything else permanent, quoting the value at `detail_pointer`.
//!
//! **Secrets** — `headers` values, `basic_auth`, `secrets` and
//! `callbacks.shared_secret` — never appear in an error or a log line, and are blanked
//! out (`[redacted]`) of provider answers before an error quotes them. Keep credentials
//! that go into `url` or `body` in `secrets`, so that they get the same care.
//!
//! # Callbacks
//!
//! The provider calls `POST /v1/providers/http/callback`.
//!
//! | key | meaning |
//! | --- | --- |
//! | `format` | `"json"`: fields below are JSON pointers into the body; `"form"`: they are form field names, read from the body, or from the query string when the body is empty |
//! | `shared_secret` | when set, the callback must carry it in the header `secret_header` or as the query parameter `token`, or it is refused |
//! | `secret_header` | default `X-Callback-Token` |
//! | `inbound` | `{"from", "text", "to"?, "id"?, "add_plus"?}`: `add_plus` puts back the `+` that providers writing bare digits leave off |
//! | `delivery_report` | `{"id", "status", "delivered_values", "undelivered_values", "detail"?, "message_id"?}` |
//!
//! **Which kind a callback is**, by the fields it carries:
//!
//! 1. if `delivery_report` is configured and the callback has its `status` field, it is
//!    a delivery report: its `id` field is then required; the status, compared without
//!    regard to case, is DELIVERED when in `delivered_values`, UNDELIVERED when in
//!    `undelivered_values`, and IN_PROGRESS otherwise (queued, sent, ...); the detail is
//!    the status, followed by `: ` and the `detail` field when it is there; `message_id`
//!    names the field where the provider echoes `{{id}}`;
//! 2. otherwise, if `inbound` is configured and the callback has its `text` field, it is
//!    an inbound SMS: `from` is then required, and so are `to` and `id` when configured;
//! 3. otherwise it is refused, as is one that lacks a field rule 1 or 2 requires.
//!
//! A field is present when the form has it (even empty) or the pointer reaches a value
//! other than `null`. A refusal is a permanent error that the gateway answers with an
//! error status, so that the provider knows; an accepted callback gets `200`.
//!
//! # Example: Vonage (Nexmo) SMS API
//!
//! Follows Vonage's published SMS API: `POST https://rest.nexmo.com/sms/json` with a
//! form body carrying `api_key`, `api_secret`, `from`, `to` (digits, no `+`), `text`
//! and `client-ref`. Vonage answers `200` even when it refuses a message, with
//! `messages[0].status` `"0"` for accepted (`"1"` throttled and `"5"` internal error are
//! worth a retry) and `messages[0].error-text` saying why; the id is
//! `messages[0].message-id`. Delivery receipts and inbound SMS come as form posts
//! (webhook method `POST` in the Vonage dashboard, both URLs ending `?token=` and the
//! shared secret), with `messageId`, `status` and `err-code`, or `msisdn`, `to` and
//! `text`. `type: unicode` keeps any text intact, at 70 characters a part.
//!
//! ```json
#![doc = include_str!("../blobs/vonage.json")]
//! ```
//!
//! # Example: Plivo Message API
//!
//! Follows Plivo's published Message API: `POST
//! https://api.plivo.com/v1/Account/{auth_id}/Message/` with HTTP Basic auth (auth id,
//! auth token) and a JSON body `src`, `dst`, `text`, `url` (where Plivo posts the
//! message's status) and `method`. Plivo answers `202` with `message_uuid`, a list of
//! ids. Status callbacks are form posts with `MessageUUID`, `Status` and `ErrorCode`;
//! inbound SMS (the number's message URL, set in the Plivo console with the same
//! `?token=`) with `From`, `To`, `Text` and `MessageUUID`.
//!
//! ```json
#![doc = include_str!("../blobs/plivo.json")]
//! ```

mod callback;
mod config;
mod redactor;
mod request;
mod response;
mod status;
mod template;

use plugin_api::{
    export_sms_module, CallbackReply, CallbackRequest, Host, HttpResponse, ModuleError, OutboundSms,
    SmsModule, Step,
};

use crate::config::Config;

/// The module: nothing but the checked blob.
pub struct HttpModule {
    config: Config,
}

impl SmsModule for HttpModule {
    const NAME: &'static str = "http";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "any provider with a simple REST or form API, described by the configuration blob";

    fn check_config(config: &str) -> Result<(), ModuleError> {
        Config::parse(config).map(drop)
    }

    fn new(config: &str, host: Host) -> Result<Self, ModuleError> {
        let config = Config::parse(config)?;
        host.info(format_args!(
            "sending SMS with {} {}",
            config.method, config.origin
        ));
        match &config.callbacks {
            Some(callbacks) if callbacks.shared_secret.is_none() => host.warn(
                "callbacks have no `shared_secret`: anyone who knows the callback URL can post reports and SMS",
            ),
            _ => {}
        }
        Ok(HttpModule { config })
    }

    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
        Ok(Step::http(request::build(&self.config, sms)?))
    }

    fn send_response(&self, sms: &OutboundSms, response: &HttpResponse) -> Result<Step, ModuleError> {
        response::read(&self.config, sms, response)
    }

    fn parse_callback(&self, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
        match &self.config.callbacks {
            Some(callbacks) => callback::parse(callbacks, request),
            None => Err(ModuleError::unsupported(
                "module `http` has no `callbacks` in its configuration, so it cannot read this callback",
            )),
        }
    }

    fn self_check(&self) -> Result<Step, ModuleError> {
        // A generic provider has no request known to be harmless (a send costs money).
        Ok(Step::done(format!(
            "configuration accepted; SMS will be sent with {} {} (no request made)",
            self.config.method, self.config.origin
        )))
    }
}

export_sms_module!(HttpModule);

#[cfg(test)]
mod tests;
