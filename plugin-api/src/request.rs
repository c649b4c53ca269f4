//! Building the [`HttpRequest`] a step asks the gateway to make, without spelling out
//! the boundary's types: `HttpRequest::post(url).header(..).json(&body)`.
//!
//! Compiled into the module (nothing here crosses the boundary); the request it builds
//! is the same plain [`HttpRequest`] a module could write field by field.

use serde::Serialize;

use crate::{Header, HttpRequest};

impl HttpRequest {
    /// A request with this method and URL, no headers and no body.
    pub fn new(method: &str, url: impl Into<String>) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            url: url.into().into(),
            headers: Vec::new().into(),
            body: Vec::new().into(),
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> HttpRequest {
        HttpRequest::new("GET", url)
    }

    /// A `POST` to `url`; give it a body with [`json`](Self::json),
    /// [`form`](Self::form) or [`body`](Self::body).
    pub fn post(url: impl Into<String>) -> HttpRequest {
        HttpRequest::new("POST", url)
    }

    /// Adds a header, after those already there. Values may hold credentials: the
    /// gateway never logs them.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> HttpRequest {
        self.headers.push(Header::new(name, value.into()));
        self
    }

    /// `body` as JSON, with `Content-Type: application/json`. Serialise a struct or a
    /// `serde_json::json!` value rather than format JSON by hand: the text of an SMS
    /// may hold any character.
    ///
    /// # Panics
    ///
    /// When `body`'s `Serialize` fails, which derived structs, strings, numbers and
    /// `serde_json::Value` never do (a map whose keys are not strings would). A panic
    /// in a module becomes an error naming the module, not a crash.
    ///
    /// ```
    /// use plugin_api::HttpRequest;
    ///
    /// let request = HttpRequest::post("https://api.example.com/v2/messages")
    ///     .header("Authorization", "Bearer k-123")
    ///     .json(&serde_json::json!({"text": "He said \"hi\"\n"}));
    /// assert_eq!(request.method, "POST");
    /// assert_eq!(request.headers[1].value, "application/json");
    /// assert_eq!(&request.body[..], br#"{"text":"He said \"hi\"\n"}"#);
    /// ```
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(self, body: &T) -> HttpRequest {
        let bytes = serde_json::to_vec(body).expect("the JSON body of a request serialises");
        self.body("application/json", bytes)
    }

    /// `fields` as an `application/x-www-form-urlencoded` body, in the order given,
    /// encoded as browsers encode forms (a space is `+`).
    ///
    /// ```
    /// use plugin_api::HttpRequest;
    ///
    /// let request = HttpRequest::post("https://api.example.com/sms")
    ///     .form(&[("To", "+447700900123"), ("Body", "Hi & bye, 20% off ☺")]);
    /// assert_eq!(request.headers[0].value, "application/x-www-form-urlencoded");
    /// assert_eq!(&request.body[..], b"To=%2B447700900123&Body=Hi+%26+bye%2C+20%25+off+%E2%98%BA");
    /// ```
    #[must_use]
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> HttpRequest {
        let mut body = String::new();
        for (name, value) in fields {
            if !body.is_empty() {
                body.push('&');
            }
            form_encode(name.as_ref(), &mut body);
            body.push('=');
            form_encode(value.as_ref(), &mut body);
        }
        self.body("application/x-www-form-urlencoded", body.into_bytes())
    }

    /// `bytes` as the body, with this `Content-Type` (replacing one set before).
    #[must_use]
    pub fn body(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> HttpRequest {
        let headers: Vec<Header> = self
            .headers
            .into_iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("content-type"))
            .chain([Header::new("Content-Type", content_type)])
            .collect();
        self.headers = headers.into();
        self.body = bytes.into().into();
        self
    }
}

/// The `application/x-www-form-urlencoded` serialisation of `text` (WHATWG URL
/// standard): ASCII letters, digits and `*-._` as they are, a space as `+`, every
/// other byte of the UTF-8 as `%XX`.
fn form_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 0xf)] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(request: &HttpRequest) -> Vec<(&str, &str)> {
        request
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect()
    }

    #[test]
    fn a_get_has_its_headers_in_order_and_no_body() {
        let request = HttpRequest::get("https://api.example.com/v1/account")
            .header("Authorization", "Bearer k")
            .header("Accept", "application/json");
        assert_eq!(
            (request.method.as_str(), request.url.as_str()),
            ("GET", "https://api.example.com/v1/account")
        );
        assert_eq!(
            headers(&request),
            [("Authorization", "Bearer k"), ("Accept", "application/json")]
        );
        assert!(request.body.is_empty());
    }

    #[test]
    fn a_body_sets_its_content_type_once() {
        let request = HttpRequest::new("PUT", "http://127.0.0.1:1/x")
            .header("content-type", "text/plain")
            .header("Accept", "*/*")
            .json(&["a"])
            .form(&[("k", "v")]);
        assert_eq!(
            headers(&request),
            [
                ("Accept", "*/*"),
                ("Content-Type", "application/x-www-form-urlencoded")
            ]
        );
        assert_eq!(&request.body[..], b"k=v");
    }

    #[test]
    fn forms_encode_every_byte_that_is_not_unreserved() {
        let mut out = String::new();
        form_encode("aZ09*-._ ~+=&%/?#\n\u{e9}\u{1f600}", &mut out);
        assert_eq!(out, "aZ09*-._+%7E%2B%3D%26%25%2F%3F%23%0A%C3%A9%F0%9F%98%80");
        let request = HttpRequest::post("http://h/").form(&[(String::from("a b"), String::new())]);
        assert_eq!(&request.body[..], b"a+b=");
        let empty: [(&str, &str); 0] = [];
        assert!(HttpRequest::post("http://h/").form(&empty).body.is_empty());
    }
}
