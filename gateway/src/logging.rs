//! The gateway's log: `tracing`, human-readable or JSON, level from `RUST_LOG` or
//! `log.level`.

use std::{
    io::IsTerminal,
    sync::Mutex,
    time::{Duration, Instant},
};

use tracing_subscriber::{fmt, EnvFilter};

/// `log.format`: how each log line is written (`text` or `json` in the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Installs the global subscriber, writing to stderr. Does nothing if one is set.
/// `level` is a `tracing` filter (`log.level`), which `RUST_LOG` overrides.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Whether to colour the log: only on a terminal, since a file or a log collector
/// would keep the escape codes as text, and never when `NO_COLOR` is set to anything
/// but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Lets one log line through per interval and counts those held back, so that a
/// flood (a connection storm, a token guesser) costs a line per interval, not a line
/// per event.
pub struct Throttle {
    interval: Duration,
    /// When the last line went out, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, held_back) = &mut *state;
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < self.interval) {
            *held_back += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn a_throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_millis(200));
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.allow(), Some(2));
    }
}
