//! Endpoint signing secrets (SPEC §2).
//!
//! A secret is `whsec_` followed by 32 random bytes in standard base64: the
//! Standard Webhooks form. The `X-Hookgate-Signature-256` HMAC is keyed with
//! the whole string as shown; the Standard Webhooks signature with the decoded
//! bytes.

use base64::Engine;

pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh endpoint signing secret.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_and_32_bytes() {
        let s = generate_secret();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(s, generate_secret());
    }
}
