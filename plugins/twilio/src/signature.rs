//! `X-Twilio-Signature`, as Twilio documents it ("Webhooks security"): HMAC-SHA1,
//! keyed with the account's auth token, over the full URL Twilio called (query
//! included) followed by every POST parameter's name and value, sorted by name,
//! without separators; base64-encoded.
//!
//! Like Twilio's own helper libraries, a URL with an explicit port is also tried
//! without it and one without a port with the scheme's default one, because proxies
//! between Twilio and the gateway add or drop `:443`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio sends for a request to `url` with these POST parameters.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `signature` is Twilio's for this request, compared in constant time.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    url_variants(url)
        .iter()
        .any(|url| mac(auth_token, url, params).verify_slice(&given).is_ok())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Byte order is Unix-style case-sensitive order; a repeated name sorts by value.
    sorted.sort();
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// `url` as given, and with its port dropped (if it has one) or the scheme's default
/// port added (if it has none).
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    let (scheme, default_port, rest) = if let Some(rest) = url.strip_prefix("https://") {
        ("https://", "443", rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        ("http://", "80", rest)
    } else {
        return variants;
    };
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(host_end);
    // An IPv6 literal holds colons of its own: only a colon after `]` is a port.
    let port_at = authority.rfind(':').filter(|&i| !authority[i..].contains(']'));
    let other = match port_at {
        Some(i) => format!("{scheme}{}{path}", &authority[..i]),
        None => format!("{scheme}{authority}:{default_port}{path}"),
    };
    variants.push(other);
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// The example of Twilio's helper libraries (twilio-python's
    /// `tests/unit/test_request_validator.py`), checked independently with
    /// `printf '%s' "$url$params" | openssl dgst -sha1 -hmac 12345 -binary | base64`.
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn twilio_example() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }

    #[test]
    fn twilios_published_example_gives_its_published_signature() {
        assert_eq!(
            compute("12345", URL, &twilio_example()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(is_valid(
            "12345",
            URL,
            &twilio_example(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn repeated_parameters_sort_by_value() {
        let repeated = params(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(compute("12345", URL, &repeated), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn a_default_port_added_or_dropped_on_the_way_still_verifies() {
        // Twilio signed `https://mycompany.com:443/...`; the gateway knows it without port.
        assert!(is_valid(
            "12345",
            URL,
            &twilio_example(),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        // Twilio signed it without a port; the gateway is configured with one.
        let with_port = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(is_valid(
            "12345",
            with_port,
            &twilio_example(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert_eq!(
            url_variants("http://[::1]/cb"),
            ["http://[::1]/cb", "http://[::1]:80/cb"]
        );
    }

    #[test]
    fn anything_else_fails() {
        let example = twilio_example();
        assert!(!is_valid("12346", URL, &example, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!is_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1",
            &example,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let mut changed = example.clone();
        changed[1].1 = "1235".into();
        assert!(!is_valid("12345", URL, &changed, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!is_valid("12345", URL, &example, "not base64!"));
        assert!(!is_valid("12345", URL, &example, ""));
    }
}
