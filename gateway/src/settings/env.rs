//! The environment as a source of settings.
//!
//! A setting is `GATEWAY_<SECTION>__<KEY>` (`GATEWAY_EMAIL__SMTP_THREADS=8`) for one of
//! the file's sections; nothing else that starts with `GATEWAY_` is. That leaves room
//! for the gateway's other variables in the same shell: `GATEWAY_CONFIG` (the settings
//! file) and the API client's `GATEWAY_URL` and `GATEWAY_TOKEN`, which once broke
//! every server command ("token: unknown field"). A misspelled key inside a known
//! section is still read, and refused with its name; a variable that is not a setting
//! at all is left out and named in [`ignored`], so that an admin can be told.

use figment::providers::Env;

use super::ENV_PREFIX;

/// The sections of the settings file, as `GATEWAY_<SECTION>__…` spells them in lower
/// case. A test checks that they are the file's.
pub(super) const SECTIONS: &[&str] = &["server", "storage", "email", "sms", "auth", "log"];

/// `GATEWAY_` variables that belong to the gateway but are not settings.
const OWN_VARIABLES: &[&str] = &["GATEWAY_CONFIG", "GATEWAY_URL", "GATEWAY_TOKEN"];

/// The blob's variable, which [`super::load`] takes verbatim rather than parsed.
pub(super) const PLUGIN_CONFIG: &str = "GATEWAY_SMS__PLUGIN_CONFIG";

/// The settings in the environment, as figment reads them.
pub(super) fn provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split("__")
        .filter(|key| is_setting(key.as_str()))
}

/// Whether a variable, named as figment names it once the prefix is gone and `__`
/// became `.` (`email.smtp_threads`), is a setting that figment should read.
fn is_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    match key.split_once('.') {
        Some((section, _)) => SECTIONS.contains(&section) && key != "sms.plugin_config",
        None => false,
    }
}

/// The names of the `GATEWAY_` variables among `names` that are neither a setting nor
/// one of the gateway's own (`GATEWAY_EMIAL__HOST`, `GATEWAY_EMAIL_HOST`): a typo that
/// changes nothing, which `gateway serve` and `gateway config` point out. Names only,
/// never values.
pub(super) fn ignored(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut ignored: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let upper = name.to_ascii_uppercase();
            let Some(rest) = upper.strip_prefix(ENV_PREFIX) else {
                return false;
            };
            !OWN_VARIABLES.contains(&upper.as_str())
                && upper != PLUGIN_CONFIG
                && !is_setting(&rest.replace("__", "."))
        })
        .collect();
    ignored.sort();
    ignored
}

#[cfg(test)]
mod tests {
    use figment::{
        providers::Serialized,
        value::{Dict, Value},
        Figment,
    };

    use super::*;
    use crate::settings::raw::RawSettings;

    #[test]
    fn the_sections_are_the_settings_files() {
        let dict: Dict = Figment::from(Serialized::defaults(RawSettings::default()))
            .extract()
            .unwrap();
        let mut sections: Vec<&str> = dict
            .iter()
            .filter(|(_, value)| matches!(value, Value::Dict(..)))
            .map(|(name, _)| name.as_str())
            .collect();
        let mut expected = SECTIONS.to_vec();
        sections.sort();
        expected.sort();
        assert_eq!(sections, expected);
    }

    #[test]
    fn only_keys_of_known_sections_are_settings() {
        for key in [
            "email.smtp_threads",
            "EMAIL.SMTP_THREADS",
            "sms.module",
            "email.smtp_thread",
        ] {
            assert!(is_setting(key), "{key}");
        }
        // The client's variables, the settings file, the verbatim blob, unknown sections.
        for key in [
            "token",
            "url",
            "config",
            "sms.plugin_config",
            "emial.host",
            "email_host",
            "",
        ] {
            assert!(!is_setting(key), "{key}");
        }
    }

    #[test]
    fn variables_that_are_not_settings_are_named_but_the_gateways_own_are_not() {
        let names = [
            "GATEWAY_URL",
            "GATEWAY_TOKEN",
            "GATEWAY_CONFIG",
            "GATEWAY_SMS__PLUGIN_CONFIG",
            "GATEWAY_EMAIL__HOST",
            "GATEWAY_EMAIL__HOTS",
            "GATEWAY_EMIAL__HOST",
            "GATEWAY_EMAIL_HOST",
            "PATH",
        ];
        assert_eq!(
            ignored(names.map(String::from)),
            ["GATEWAY_EMAIL_HOST", "GATEWAY_EMIAL__HOST"]
        );
    }
}
