//! Tenants and their API keys (docs/product.md, "Authentication").
//!
//! Keys are bearer tokens with scopes. Only a SHA-256 hash of a token is ever
//! stored: tokens carry 256 random bits, so a plain hash cannot be reversed
//! and lookups stay a single index read.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{KeyId, TenantId};
use crate::signing::HeaderNames;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Names of the event, delivery and signature headers on its deliveries.
    #[serde(default)]
    pub headers: HeaderNames,
    pub created_at: DateTime<Utc>,
}

/// What a tenant API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Publish events and read them back.
    Publish,
    /// Manage endpoints, the event catalog and delivery logs.
    Endpoints,
    /// Upload and manage plugins.
    Plugins,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Publish, Scope::Endpoints, Scope::Plugins];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::Endpoints => "endpoints",
            Scope::Plugins => "plugins",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s).ok_or(())
    }
}

/// A stored API key: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The token's first characters, so a person can tell keys apart.
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Prefix of tenant API key tokens, so leaked keys are recognisable.
pub const KEY_TOKEN_PREFIX: &str = "hgk_";
/// Prefix of generated operator admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "hgadm_";

/// A fresh bearer token: the prefix plus 32 random bytes, base64url.
pub fn generate_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The form in which tokens are stored and looked up.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let a = generate_token(KEY_TOKEN_PREFIX);
        let b = generate_token(KEY_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("hgk_") && a.len() == 4 + 43);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn scopes_parse_by_name() {
        assert_eq!("plugins".parse::<Scope>(), Ok(Scope::Plugins));
        assert!("admin".parse::<Scope>().is_err());
    }
}
