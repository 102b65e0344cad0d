//! Endpoint secrets and request signatures (docs/product.md, "Signing").
//!
//! A secret is `whsec_` followed by 32 random bytes in standard base64: the
//! Standard Webhooks form. Each request carries two signatures:
//! - `X-Hookgate-Signature-256: sha256=<hex>`: HMAC-SHA256 of the body keyed
//!   with the secret string exactly as shown to the user, so Menon's Node
//!   and Python snippets (docs/platforms.md) verify it unchanged;
//! - `webhook-signature: v1,<base64>`: Standard Webhooks, HMAC-SHA256 of
//!   `{webhook-id}.{webhook-timestamp}.{body}` keyed with the decoded bytes.
//!
//! During a rotation overlap both carry one signature per secret, new first,
//! separated by spaces.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// The Standard Webhooks header names; fixed by that specification.
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Headers no one but the gateway and the HTTP connection may set on a
/// delivery: what the gateway writes itself (body framing, identity, the
/// Standard Webhooks trio) and the hop-by-hop and proxy headers, which
/// would change how the request travels rather than what it says. Tenant
/// header names and plugin headers are both checked against this one list.
pub const RESERVED_HEADERS: [&str; 19] = [
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "http2-settings",
    WEBHOOK_ID,
    WEBHOOK_TIMESTAMP,
    WEBHOOK_SIGNATURE,
];

/// Whether `name` (any case) is one of [`RESERVED_HEADERS`].
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
}

/// A fresh endpoint signing secret.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// The names of the gateway's own headers, per tenant, so a tenant can play
/// either platform of docs/platforms.md (`X-Mogu-*`, `X-Menon-Signature`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderNames {
    /// Carries the event type. Default `X-Hookgate-Event`.
    #[serde(default = "HeaderNames::default_event")]
    pub event: String,
    /// Carries the delivery id, stable across retries. Default `X-Hookgate-Delivery`.
    #[serde(default = "HeaderNames::default_delivery")]
    pub delivery: String,
    /// Carries `sha256=<hex>`. Default `X-Hookgate-Signature-256`.
    #[serde(default = "HeaderNames::default_signature")]
    pub signature: String,
}

impl HeaderNames {
    fn default_event() -> String {
        "X-Hookgate-Event".into()
    }
    fn default_delivery() -> String {
        "X-Hookgate-Delivery".into()
    }
    fn default_signature() -> String {
        "X-Hookgate-Signature-256".into()
    }

    /// Checks each name is a valid HTTP header name that does not clash with
    /// a header the gateway sets itself.
    pub fn validate(&self) -> Result<(), crate::validation::FieldError> {
        let mut seen: Vec<String> = Vec::new();
        for (field, name) in [
            ("headers.event", &self.event),
            ("headers.delivery", &self.delivery),
            ("headers.signature", &self.signature),
        ] {
            let lower = name.to_ascii_lowercase();
            let bad = |m: &str| crate::validation::FieldError::new(field, m);
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(bad("is not a valid HTTP header name"));
            }
            if is_reserved_header(name) {
                return Err(bad(
                    "is a header the gateway or the HTTP connection sets itself",
                ));
            }
            if seen.contains(&lower) {
                return Err(bad("repeats another header name"));
            }
            seen.push(lower);
        }
        Ok(())
    }
}

impl Default for HeaderNames {
    fn default() -> Self {
        Self {
            event: Self::default_event(),
            delivery: Self::default_delivery(),
            signature: Self::default_signature(),
        }
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The Standard Webhooks key: the base64 after `whsec_`. A secret not in
/// that form (never made here) is used as raw bytes.
fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b64| B64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `sha256=<hex>` per secret, space-separated, in the order given.
pub fn hex_signatures(secrets: &[&str], body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| format!("sha256={}", hex::encode(hmac_sha256(s.as_bytes(), &[body]))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `v1,<base64>` per secret over `{id}.{timestamp}.{body}`, space-separated.
pub fn standard_signatures(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    secrets
        .iter()
        .map(|s| {
            let mac = hmac_sha256(
                &standard_key(s),
                &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
            );
            format!("v1,{}", B64.encode(mac))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every header that identifies and signs one request, in send order.
pub fn headers(
    names: &HeaderNames,
    delivery_id: &str,
    event_type: &str,
    secrets: &[&str],
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    vec![
        (names.event.clone(), event_type.to_string()),
        (names.delivery.clone(), delivery_id.to_string()),
        (names.signature.clone(), hex_signatures(secrets, body)),
        (WEBHOOK_ID.into(), delivery_id.to_string()),
        (WEBHOOK_TIMESTAMP.into(), timestamp.to_string()),
        (
            WEBHOOK_SIGNATURE.into(),
            standard_signatures(secrets, delivery_id, timestamp, body),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_and_32_bytes() {
        let s = generate_secret();
        let raw = B64.decode(s.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(s, generate_secret());
    }

    #[test]
    fn hex_signature_matches_rfc4231_vector() {
        // RFC 4231 test case 2: key "Jefe".
        let sig = hex_signatures(&["Jefe"], b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_signature_matches_the_spec_example() {
        // The example of the Standard Webhooks specification.
        let sig = standard_signatures(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_lists_new_then_old() {
        let sig = hex_signatures(&["new", "old"], b"x");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], hex_signatures(&["new"], b"x"));
        assert_eq!(parts[1], hex_signatures(&["old"], b"x"));
    }

    #[test]
    fn header_names_are_checked() {
        assert!(HeaderNames::default().validate().is_ok());
        let menon = HeaderNames {
            signature: "X-Menon-Signature".into(),
            ..Default::default()
        };
        assert!(menon.validate().is_ok());
        let clash = HeaderNames {
            event: "Content-Type".into(),
            ..Default::default()
        };
        assert_eq!(clash.validate().unwrap_err().field, "headers.event");
        let bad = HeaderNames {
            delivery: "X Bad".into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let dup = HeaderNames {
            delivery: "x-hookgate-event".into(),
            ..Default::default()
        };
        assert!(dup.validate().is_err());
    }
}
