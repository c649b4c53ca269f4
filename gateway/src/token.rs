//! API tokens and what each may do: read from `auth.tokens`, checked by the API.
//! Below both, so that the settings and the API need not import each other.

use crate::secret::Secret;

/// What a token may do (`auth.tokens[].role`: `send` or `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends and reads status.
    Send,
    /// Does everything.
    Admin,
}

/// A configured API token and its role.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub token: Secret,
    pub role: Role,
}
