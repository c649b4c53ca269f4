//! What the SMTP server saw, read from its own record (`tests/smtp/server.py`): who got
//! how many copies, and how many sessions were open at each moment.

use std::collections::HashMap;

use serde_json::Value;

/// The copies each recipient received (RCPT TO of accepted messages).
pub fn copies(events: &[Value]) -> HashMap<String, usize> {
    let mut copies = HashMap::new();
    for message in e2e::smtp::messages(events) {
        for rcpt in message["rcpt_tos"].as_array().into_iter().flatten() {
            *copies
                .entry(rcpt.as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    copies
}

/// When an event happened, in Unix seconds on the server's clock (this machine's).
pub fn time(event: &Value) -> f64 {
    event["t"].as_f64().expect("every event has its time")
}

/// The sessions open just after each `connect` and `close`, with its time, in the
/// order the server saw them.
pub fn open_sessions(events: &[Value]) -> Vec<(f64, usize)> {
    let mut open = 0usize;
    let mut timeline = Vec::new();
    for event in events {
        if event["event"] == "connect" {
            open += 1;
        } else if event["event"] == "close" {
            open = open.saturating_sub(1);
        } else {
            continue;
        }
        timeline.push((time(event), open));
    }
    timeline
}

/// The most sessions open at once from just after the time `from` to `to` (Unix
/// seconds): what was open once everything recorded at `from` had happened, and after.
pub fn most_open_between(events: &[Value], from: f64, to: f64) -> usize {
    let timeline = open_sessions(events);
    let at_from = timeline
        .iter()
        .take_while(|(t, _)| *t <= from)
        .last()
        .map_or(0, |(_, open)| *open);
    timeline
        .iter()
        .filter(|(t, _)| *t > from && *t <= to)
        .map(|(_, open)| *open)
        .fold(at_from, usize::max)
}

/// The sessions that opened after the time `after` while `limit` or more were open
/// already: each with its time and how many were open with it.
pub fn opened_beyond(events: &[Value], after: f64, limit: usize) -> Vec<(u64, f64, usize)> {
    let mut open = 0usize;
    let mut beyond = Vec::new();
    for event in events {
        if event["event"] == "connect" {
            open += 1;
            if time(event) > after && open > limit {
                beyond.push((event["session"].as_u64().unwrap_or(0), time(event), open));
            }
        } else if event["event"] == "close" {
            open = open.saturating_sub(1);
        }
    }
    beyond
}

/// The sessions that ended without QUIT: the connection was cut (a killed client).
pub fn cut_sessions(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event"] == "close" && e["quit"] == false)
        .collect()
}

/// When session `session` opened and closed (`None` while it is open).
pub fn session_span(events: &[Value], session: u64) -> (f64, Option<f64>) {
    let of = |kind: &str| {
        events
            .iter()
            .find(|e| e["event"] == kind && e["session"] == session)
            .map(time)
    };
    (of("connect").expect("the session opened"), of("close"))
}

/// Unix time now, in seconds, on the clock the server records with.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}
