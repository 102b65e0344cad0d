//! What a plugin hands back, checked and bounded before anything stores,
//! logs or sends it.
//!
//! A plugin is untrusted code: every string it returns may be huge or carry
//! control characters. Reasons, error messages and log lines are cut to a
//! bound with a marker and have their control characters escaped (a newline
//! in a log line would otherwise forge a gateway log line); headers and the
//! content type are refused when over their bounds or not valid HTTP, as a
//! delivery carrying them could not be sent as the plugin meant.

use super::error::PluginError;
use super::wit::{Delivery, Outcome};
use crate::signing::{HeaderNames, is_reserved_header};

/// Most headers a plugin may add.
pub const MAX_HEADERS: usize = 32;
/// Longest header name a plugin may set.
pub const MAX_HEADER_NAME: usize = 256;
/// Longest header value a plugin may set.
pub const MAX_HEADER_VALUE: usize = 8 << 10;
/// Most bytes of header names and values a plugin may add in all.
pub const MAX_HEADERS_TOTAL: usize = 64 << 10;
/// Longest content type a plugin may set.
pub const MAX_CONTENT_TYPE: usize = 256;
/// Longest drop reason or error message kept.
pub const MAX_MESSAGE: usize = 1024;
/// Log lines kept per call (host `log` import plus stdout/stderr).
pub const MAX_LOG_LINES: usize = 20;
/// Longest kept log line.
pub const MAX_LOG_LINE: usize = 1024;
/// How much of an offending name an error message quotes.
const QUOTED: usize = 64;

/// `text` with control characters escaped (`\n`, `\u{1b}`) and cut to `max`
/// bytes, with a marker saying how long it was.
pub fn bounded(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 32);
    for c in text.chars() {
        if out.len() >= max {
            out.push_str(&format!("… (cut, {} bytes in all)", text.len()));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A name as an error message quotes it: short and printable.
fn quoted(name: &str) -> String {
    format!("\"{}\"", bounded(name, QUOTED))
}

/// Checks and bounds one call's result. `tenant` names the headers the
/// tenant's deliveries carry, which a plugin may not set either.
pub fn check(
    result: Result<Outcome, String>,
    output_limit: usize,
    tenant: &HeaderNames,
) -> Result<Outcome, PluginError> {
    match result {
        Err(message) => Err(PluginError::Returned(bounded(&message, MAX_MESSAGE))),
        Ok(Outcome::Drop(reason)) => Ok(Outcome::Drop(bounded(&reason, MAX_MESSAGE))),
        Ok(Outcome::Deliver(delivery)) => {
            check_delivery(&delivery, output_limit, tenant)?;
            Ok(Outcome::Deliver(delivery))
        }
    }
}

fn bad(message: String) -> PluginError {
    PluginError::BadOutput(message)
}

fn check_delivery(
    delivery: &Delivery,
    output_limit: usize,
    tenant: &HeaderNames,
) -> Result<(), PluginError> {
    if delivery.body.len() > output_limit {
        return Err(PluginError::OutputTooLarge {
            size: delivery.body.len(),
            limit: output_limit,
        });
    }
    if delivery.headers.len() > MAX_HEADERS {
        return Err(bad(format!(
            "{} headers, at most {MAX_HEADERS} are allowed",
            delivery.headers.len()
        )));
    }
    let mut total = 0;
    for h in &delivery.headers {
        check_header(&h.name, &h.value, tenant)?;
        total += h.name.len() + h.value.len();
    }
    if total > MAX_HEADERS_TOTAL {
        return Err(bad(format!(
            "headers of {total} bytes in all, at most {MAX_HEADERS_TOTAL} are allowed"
        )));
    }
    if let Some(ct) = &delivery.content_type {
        if ct.len() > MAX_CONTENT_TYPE {
            return Err(bad(format!(
                "a content type of {} bytes, at most {MAX_CONTENT_TYPE} are allowed",
                ct.len()
            )));
        }
        if reqwest::header::HeaderValue::from_str(ct).is_err() {
            return Err(bad(format!("invalid content type {}", quoted(ct))));
        }
    }
    Ok(())
}

fn check_header(name: &str, value: &str, tenant: &HeaderNames) -> Result<(), PluginError> {
    if name.len() > MAX_HEADER_NAME {
        return Err(bad(format!(
            "a header name of {} bytes, at most {MAX_HEADER_NAME} are allowed",
            name.len()
        )));
    }
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(bad(format!("invalid header name {}", quoted(name))));
    }
    let own = [&tenant.event, &tenant.delivery, &tenant.signature];
    if is_reserved_header(name) || own.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        return Err(bad(format!("header {name} is set by the gateway")));
    }
    if value.len() > MAX_HEADER_VALUE {
        return Err(bad(format!(
            "a value of {} bytes for header {name}, at most {MAX_HEADER_VALUE} are allowed",
            value.len()
        )));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(bad(format!("invalid value for header {name}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::wit::Header;

    fn deliver(headers: Vec<(&str, String)>, content_type: Option<String>) -> Outcome {
        Outcome::Deliver(Delivery {
            body: "{}".into(),
            headers: headers
                .into_iter()
                .map(|(name, value)| Header {
                    name: name.into(),
                    value,
                })
                .collect(),
            content_type,
        })
    }

    fn refused(outcome: Outcome) -> String {
        match check(Ok(outcome), 1 << 20, &HeaderNames::default()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn long_messages_are_cut_with_a_marker_and_control_characters_escaped() {
        let huge = "x".repeat(24 << 20);
        let Err(PluginError::Returned(m)) = check(Err(huge), 1, &HeaderNames::default()) else {
            panic!("not an error");
        };
        assert!(m.len() < MAX_MESSAGE + 64, "{}", m.len());
        assert!(
            m.ends_with(&format!("(cut, {} bytes in all)", 24 << 20)),
            "{m}"
        );

        let forged = "one\n2026-01-01T00:00:00Z ERROR forged\r\x1b[31m";
        let Ok(Outcome::Drop(r)) =
            check(Ok(Outcome::Drop(forged.into())), 1, &HeaderNames::default())
        else {
            panic!("not a drop");
        };
        assert!(!r.chars().any(char::is_control), "{r:?}");
        assert!(r.starts_with("one\\n2026"), "{r}");
    }

    #[test]
    fn hop_by_hop_proxy_and_tenant_headers_are_refused() {
        for name in [
            "Keep-Alive",
            "Upgrade",
            "Proxy-Connection",
            "Trailer",
            "Proxy-Authorization",
            "Expect",
            "Connection",
            "TE",
            "webhook-signature",
            "X-Hookgate-Signature-256",
        ] {
            let e = refused(deliver(vec![(name, "x".into())], None));
            assert!(e.contains("set by the gateway"), "{name}: {e}");
        }
    }

    #[test]
    fn header_and_content_type_sizes_are_bounded() {
        let e = refused(deliver(vec![(&"n".repeat(24 << 20), "x".into())], None));
        assert!(e.len() < 200, "{e}");
        let e = refused(deliver(vec![("X-Big", "a".repeat(1 << 20))], None));
        assert!(e.contains("at most 8192"), "{e}");
        let many: Vec<(&str, String)> = ["A", "B", "C", "D", "E", "F", "G", "H", "I"]
            .into_iter()
            .map(|n| (n, "v".repeat(MAX_HEADER_VALUE)))
            .collect();
        let e = refused(deliver(many, None));
        assert!(e.contains("in all"), "{e}");
        let e = refused(deliver(vec![], Some("t".repeat(1 << 20))));
        assert!(e.contains("content type"), "{e}");
        let e = refused(deliver(vec![("bad name", "x".into())], None));
        assert!(e.contains("\"bad name\""), "{e}");
    }

    #[test]
    fn an_ordinary_delivery_passes() {
        let ok = check(
            Ok(deliver(
                vec![("X-Env", "prod".into())],
                Some("text/plain".into()),
            )),
            1 << 20,
            &HeaderNames::default(),
        );
        assert!(ok.is_ok());
    }
}
