//! The provider's callbacks: authenticated with the shared secret, then read as a
//! delivery report or an inbound SMS according to which fields they carry.

use plugin_api::{CallbackEvent, CallbackReply, CallbackRequest, DeliveryStatus, ModuleError};
use serde_json::Value;

use crate::config::{value_text, CallbackFormat, Callbacks, InboundFields, ReportFields};

/// The query parameter that may carry the shared secret instead of the header.
pub const TOKEN_PARAMETER: &str = "token";

pub fn parse(callbacks: &Callbacks, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
    authenticate(callbacks, request)?;
    let fields = Fields::read(callbacks.format, request)?;

    if let Some(report) = &callbacks.report {
        if let Some(status) = fields.get(&report.status) {
            return Ok(CallbackReply::ok(vec![delivery_report(report, &fields, status)?]));
        }
    }
    if let Some(inbound) = &callbacks.inbound {
        if let Some(text) = fields.get(&inbound.text) {
            return Ok(CallbackReply::ok(vec![inbound_sms(inbound, &fields, text)?]));
        }
    }
    let mut looked_for = Vec::new();
    if let Some(report) = &callbacks.report {
        looked_for.push(format!("a delivery report has `{}`", report.status));
    }
    if let Some(inbound) = &callbacks.inbound {
        looked_for.push(format!("an inbound SMS has `{}`", inbound.text));
    }
    Err(refused(&format!(
        "it is neither of the kinds configured ({})",
        looked_for.join("; ")
    )))
}

fn refused(reason: &str) -> ModuleError {
    ModuleError::permanent(format!("callback refused: {reason}"))
}

fn authenticate(callbacks: &Callbacks, request: &CallbackRequest) -> Result<(), ModuleError> {
    let Some(secret) = &callbacks.shared_secret else {
        return Ok(());
    };
    let from_header = request.header(&callbacks.secret_header).map(str::to_string);
    let from_query = || {
        form_urlencoded::parse(request.query.as_bytes())
            .find(|(name, _)| name == TOKEN_PARAMETER)
            .map(|(_, value)| value.into_owned())
    };
    match from_header.or_else(from_query) {
        Some(given) if secret.matches(&given) => Ok(()),
        Some(_) => Err(refused(&format!(
            "the shared secret in `{}` or `?{TOKEN_PARAMETER}=` is wrong",
            callbacks.secret_header
        ))),
        None => Err(refused(&format!(
            "it carries no shared secret (expected in header `{}` or query parameter `{TOKEN_PARAMETER}`)",
            callbacks.secret_header
        ))),
    }
}

/// A callback's fields, however the provider sent them.
enum Fields {
    Json(Value),
    Form(Vec<(String, String)>),
}

impl Fields {
    fn read(format: CallbackFormat, request: &CallbackRequest) -> Result<Fields, ModuleError> {
        match format {
            CallbackFormat::Json => serde_json::from_slice(&request.body)
                .map(Fields::Json)
                .map_err(|e| refused(&format!("the body is not JSON ({e})"))),
            CallbackFormat::Form => {
                // Some providers call with GET and put everything in the query string.
                let source = if request.body.iter().all(u8::is_ascii_whitespace) {
                    request.query.as_bytes()
                } else {
                    &request.body[..]
                };
                Ok(Fields::Form(
                    form_urlencoded::parse(source)
                        .map(|(n, v)| (n.into_owned(), v.into_owned()))
                        .collect(),
                ))
            }
        }
    }

    /// The field's value, if the callback has it (a JSON `null` counts as absent).
    fn get(&self, field: &str) -> Option<String> {
        match self {
            Fields::Json(value) => value.pointer(field).and_then(|v| match v {
                Value::Array(_) | Value::Object(_) => Some(v.to_string()),
                scalar => value_text(scalar),
            }),
            Fields::Form(pairs) => pairs.iter().find(|(n, _)| n == field).map(|(_, v)| v.clone()),
        }
    }

    /// A field the blob names and the callback must have.
    fn require(&self, field: &str, what: &str) -> Result<String, ModuleError> {
        self.get(field)
            .ok_or_else(|| refused(&format!("{what} without `{field}`")))
    }
}

fn delivery_report(
    report: &ReportFields,
    fields: &Fields,
    status: String,
) -> Result<CallbackEvent, ModuleError> {
    let provider_id = fields.require(&report.id, "a delivery report")?;
    let lower = status.to_lowercase();
    let delivery_status = if report.delivered.contains(&lower) {
        DeliveryStatus::DELIVERED
    } else if report.undelivered.contains(&lower) {
        DeliveryStatus::UNDELIVERED
    } else {
        DeliveryStatus::IN_PROGRESS
    };
    let detail = match report.detail.as_deref().and_then(|field| fields.get(field)) {
        Some(detail) if !detail.is_empty() => format!("{status}: {detail}"),
        _ => status,
    };
    let message_id = report
        .message_id
        .as_deref()
        .and_then(|field| fields.get(field))
        .filter(|id| !id.is_empty());
    Ok(CallbackEvent::delivery_report(
        provider_id,
        message_id.as_deref(),
        delivery_status,
        detail,
    ))
}

fn inbound_sms(inbound: &InboundFields, fields: &Fields, text: String) -> Result<CallbackEvent, ModuleError> {
    let optional = |field: &Option<String>| -> Result<String, ModuleError> {
        match field {
            Some(field) => fields.require(field, "an inbound SMS"),
            None => Ok(String::new()),
        }
    };
    let number = |value: String| {
        if inbound.add_plus && !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            format!("+{value}")
        } else {
            value
        }
    };
    Ok(CallbackEvent::Inbound {
        from: number(fields.require(&inbound.from, "an inbound SMS")?).into(),
        to: number(optional(&inbound.to)?).into(),
        text: text.into(),
        provider_id: optional(&inbound.id)?.into(),
    })
}
