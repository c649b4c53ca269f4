//! A module's name, checked once: it becomes a file name inside the modules
//! directory, so it must never be able to name a path.

use std::fmt;

/// A module's name: the `NAME` of `libNAME.so`. Letters, digits, `_` and `-` only, so
/// that it can never reach outside the modules directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleName(String);

impl ModuleName {
    pub fn new(name: &str) -> Result<ModuleName, String> {
        if name.is_empty() {
            return Err("a module name cannot be empty".into());
        }
        if name.len() > 64 {
            return Err(format!(
                "`{name}` is too long for a module name (64 characters at most)"
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "`{name}` is not a module name: a name has only letters, digits, `_` and `-`, \
                 and is looked up as libNAME.so inside sms.modules_dir (paths are refused)"
            ));
        }
        Ok(ModuleName(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
