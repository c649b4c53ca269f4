//! The request for one SMS, built from the blob's templates.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use plugin_api::{HttpRequest, ModuleError, OutboundSms};

use crate::{
    config::{Body, Config},
    template::Values,
};

/// What a value inserted into the URL is encoded with: everything but RFC 3986's
/// unreserved characters, so that it stays one path segment or one query value.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn build(config: &Config, sms: &OutboundSms) -> Result<HttpRequest, ModuleError> {
    let values = Values {
        sms,
        secrets: &config.secrets,
    };
    let url = config.url.render_escaped(&values, |value, out| {
        out.extend(utf8_percent_encode(value, URL_VALUE))
    });

    let mut request = HttpRequest::new(&config.method, url);
    for (name, template) in &config.headers {
        let value = template.render(&values);
        // Only the SMS's text can bring one: the gateway checks numbers and ids.
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ModuleError::permanent(format!(
                "this SMS cannot be sent: header `{name}` would hold a line break from its text"
            )));
        }
        request = request.header(name, value);
    }

    let body = match &config.body {
        Body::None => Vec::new(),
        Body::Json(template) => template.render(&values).to_string().into_bytes(),
        Body::Form(fields) => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (name, template) in fields {
                form.append_pair(name, &template.render(&values));
            }
            form.finish().into_bytes()
        }
    };

    // The blob's headers already hold the Content-Type (see `Config::headers`).
    request.body = body.into();
    Ok(request)
}
