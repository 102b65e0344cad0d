//! An independent check of hookgate's signatures, shared by the tests, the
//! bench's sink and `examples/receiver.rs`: HMAC-SHA256 written out from
//! RFC 2104 over plain SHA-256, not the gateway's HMAC code, so a mistake
//! there cannot hide in both.
//!
//! Both styles the gateway sends (docs/product.md, "Delivery"):
//! `X-Hookgate-Signature-256: sha256=<hex>` keyed with the secret string as
//! shown, and Standard Webhooks' `webhook-signature: v1,<base64>` over
//! `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded
//! part of `whsec_...`. Either header may list several signatures (one per
//! secret during a rotation overlap), separated by spaces.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use sha2::{Digest, Sha256};

/// HMAC-SHA256 of the concatenated `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad = k.map(|b| b ^ 0x36);
    let opad = k.map(|b| b ^ 0x5c);
    let mut inner = Sha256::new().chain_update(ipad);
    for part in parts {
        inner.update(part);
    }
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner.finalize())
        .finalize()
        .into()
}

/// `sha256=<hex>` as Menon's Node/Python snippets compute it
/// (docs/platforms.md): keyed with the secret string exactly as shown.
pub fn hex_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
    )
}

/// The Standard Webhooks key of a `whsec_...` secret.
pub fn standard_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix("whsec_")?).ok()
}

/// `v1,<base64>`: the Standard Webhooks signature of `id.timestamp.body`.
pub fn sign_standard(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// The Standard Webhooks signature with the key of a `whsec_...` secret.
pub fn standard_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = standard_key(secret).expect("a whsec_ secret");
    sign_standard(&key, id, timestamp, body)
}

/// Whether one of the `webhook-signature` header's signatures is `key`'s
/// over this request's `webhook-id`, `webhook-timestamp` and body. The
/// timestamp's freshness is the caller's to check.
pub fn verify_standard(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(signatures)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return false;
    };
    let expected = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    signatures.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| STANDARD.decode(b).ok())
            .is_some_and(|given| same(&given, &expected))
    })
}

/// Whether one of the `sha256=<hex>` signatures in `header` is `secret`'s
/// over `body`.
pub fn verify_hex(header: &str, secret: &str, body: &[u8]) -> bool {
    let expected = hmac_sha256(secret.as_bytes(), &[body]);
    header.split(' ').any(|s| {
        s.strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|given| same(&given, &expected))
    })
}

/// Compares in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_hmac_matches_rfc4231() {
        assert_eq!(
            hex_signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let key = [0xaa; 131];
        assert_eq!(
            hex::encode(hmac_sha256(
                &key,
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = standard_key(secret).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "dlv_1".parse().unwrap());
        headers.insert("webhook-timestamp", "1614265330".parse().unwrap());
        let good = standard_signature(secret, "dlv_1", "1614265330", b"{}");
        let other = sign_standard(b"another key", "dlv_1", "1614265330", b"{}");
        headers.insert(
            "webhook-signature",
            format!("{other} {good}").parse().unwrap(),
        );
        assert!(verify_standard(&key, &headers, b"{}"));
        assert!(!verify_standard(&key, &headers, b"{ }"));
        headers.insert("webhook-id", "dlv_2".parse().unwrap());
        assert!(!verify_standard(&key, &headers, b"{}"));

        let hex = hex_signature("s3cret", b"body");
        assert!(verify_hex(&format!("sha256=00 {hex}"), "s3cret", b"body"));
        assert!(!verify_hex(&hex, "s3cret", b"bodY"));
        assert!(!verify_hex(&hex, "other", b"body"));
    }
}
