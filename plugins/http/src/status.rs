//! Sets of HTTP status codes as the blob writes them: `201`, `"2xx"`, `"200-204"`.

use serde_json::Value;

/// A set of status codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Every 2xx: what `success_status` means when the blob says nothing.
    pub fn default_success() -> StatusSet {
        StatusSet(vec![(200, 299)])
    }

    /// 408 Request Timeout, 429 Too Many Requests and every 5xx: what
    /// `transient_status` means when the blob says nothing.
    pub fn default_transient() -> StatusSet {
        StatusSet(vec![(408, 408), (429, 429), (500, 599)])
    }

    /// Parses the list under `key`; an error names the bad item.
    pub fn parse(key: &str, items: &[Value]) -> Result<StatusSet, (String, String)> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_item(item).map_err(|reason| (format!("{key}[{i}]"), reason)))
            .collect::<Result<_, _>>()
            .map(StatusSet)
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(low, high)| (low..=high).contains(&status))
    }
}

fn parse_item(item: &Value) -> Result<(u16, u16), String> {
    let bad = || {
        format!("{item} is not a status code (100 to 599), a class like \"2xx\" or a range like \"200-204\"")
    };
    let code = |text: &str| -> Result<u16, String> {
        text.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(bad)
    };
    match item {
        Value::Number(n) => {
            let n = n.as_u64().filter(|c| (100..=599).contains(c)).ok_or_else(bad)?;
            Ok((n as u16, n as u16))
        }
        Value::String(text) => {
            let text = text.trim();
            let bytes = text.as_bytes();
            if bytes.len() == 3 && bytes[1..].eq_ignore_ascii_case(b"xx") {
                let class = match bytes[0] {
                    digit @ b'1'..=b'5' => u16::from(digit - b'0') * 100,
                    _ => return Err(bad()),
                };
                Ok((class, class + 99))
            } else if let Some((low, high)) = text.split_once('-') {
                let (low, high) = (code(low)?, code(high)?);
                if low > high {
                    return Err(format!(
                        "the range {item} is empty: its first code is above its last"
                    ));
                }
                Ok((low, high))
            } else {
                code(text).map(|c| (c, c))
            }
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_classes_and_ranges_are_understood() {
        let set = StatusSet::parse("s", json!([201, "3XX", "400-404", " 418 "]).as_array().unwrap()).unwrap();
        for yes in [201, 300, 399, 400, 404, 418] {
            assert!(set.contains(yes), "{yes}");
        }
        for no in [200, 202, 299, 405, 500] {
            assert!(!set.contains(no), "{no}");
        }
    }

    #[test]
    fn the_defaults_are_2xx_and_408_429_5xx() {
        assert!(StatusSet::default_success().contains(204));
        assert!(!StatusSet::default_success().contains(300));
        let transient = StatusSet::default_transient();
        assert!([408, 429, 500, 503, 599].iter().all(|&s| transient.contains(s)));
        assert!(![400, 401, 404, 409].iter().any(|&s| transient.contains(s)));
    }

    #[test]
    fn bad_items_are_named_by_index() {
        for bad in [
            json!(["2xx", "6xx"]),
            json!([200, 99]),
            json!([200, "204-200"]),
            json!([200, true]),
        ] {
            let (key, reason) = StatusSet::parse("success_status", bad.as_array().unwrap()).unwrap_err();
            assert_eq!(key, "success_status[1]", "{reason}");
        }
    }
}
