//! `hostile-strings`: hands the host oversized or malformed strings, floods
//! its logs, or asks WASI for more than a call may hold. Config
//! `{"mode": ...}` picks the abuse (see [`Mode`]).

/// Size of the huge drop reason, error message and header name.
pub const HUGE: usize = 24 << 20;
/// Size of each big header value, of the content type, and of each of the
/// stdout and stderr floods.
pub const BIG: usize = 1 << 20;
/// Big headers in `header-values`.
pub const BIG_HEADERS: usize = 20;
/// Calls to `log` in `log-flood`.
pub const LOG_FLOOD_CALLS: usize = 100_000;
/// Bytes asked of `get-random-bytes` in `random`.
pub const RANDOM_BYTES: u64 = 64 << 20;
/// What `log-newlines` logs: each would forge or garble a gateway log line
/// if written as is.
pub const FORGED_LINES: [&str; 3] = [
    "line one\n2026-01-01T00:00:00Z ERROR forged gateway line",
    "carriage\rreturn overwrites the line",
    "\x1b[31mred\x1b[0m escape",
];

/// The abuse, from config `{"mode": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `drop` with a [`HUGE`] reason.
    Drop,
    /// `err` with a [`HUGE`] message.
    Err,
    /// Delivers with one header whose name is [`HUGE`] and invalid.
    HeaderName,
    /// Delivers with [`BIG_HEADERS`] headers `X-Big-N` of [`BIG`] each.
    HeaderValues,
    /// Delivers with a [`BIG`] content type.
    ContentType,
    /// Prints [`BIG`] to stdout and to stderr, then delivers unchanged.
    Stdout,
    /// Logs [`FORGED_LINES`] (and prints them), then delivers unchanged.
    LogNewlines,
    /// Calls `log` [`LOG_FLOOD_CALLS`] times, then delivers unchanged.
    LogFlood,
    /// Delivers with this header, value `x`.
    Header(String),
    /// Asks for [`RANDOM_BYTES`] random bytes, then delivers unchanged.
    Random,
}

/// The mode named by the endpoint's config.
pub fn mode(config: &str) -> Result<Mode, String> {
    let config: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    let field = |key: &str| config.get(key).and_then(|v| v.as_str());
    Ok(match field("mode").ok_or("config needs a \"mode\"")? {
        "drop" => Mode::Drop,
        "err" => Mode::Err,
        "header-name" => Mode::HeaderName,
        "header-values" => Mode::HeaderValues,
        "content-type" => Mode::ContentType,
        "stdout" => Mode::Stdout,
        "log-newlines" => Mode::LogNewlines,
        "log-flood" => Mode::LogFlood,
        "hop-by-hop" | "header" => Mode::Header(
            field("header")
                .ok_or("config needs a \"header\" name")?
                .to_string(),
        ),
        "random" => Mode::Random,
        other => return Err(format!("unknown mode {other:?}")),
    })
}

/// Exactly `len` bytes of `pattern` repeated.
pub fn filler(pattern: &str, len: usize) -> String {
    let mut text = pattern.repeat(len / pattern.len() + 1);
    text.truncate(len);
    text
}

/// `lines` lines of `width` bytes (newline included) of `fill`.
pub fn flood(fill: char, width: usize, lines: usize) -> String {
    let mut line = filler(fill.encode_utf8(&mut [0; 4]), width - 1);
    line.push('\n');
    line.repeat(lines)
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit" });

    use std::io::Write;

    use hookgate::plugin::log::{Level, log};
    use hookgate::plugin::types::{Delivery, Header};

    use super::*;

    struct Strings;

    fn deliver(body: String, headers: Vec<Header>, content_type: Option<String>) -> Outcome {
        Outcome::Deliver(Delivery {
            body,
            headers,
            content_type,
        })
    }

    impl Guest for Strings {
        fn transform(event: Event, config: String) -> Result<Outcome, String> {
            let unchanged = event.payload;
            Ok(match mode(&config)? {
                Mode::Drop => Outcome::Drop(filler("x", HUGE)),
                Mode::Err => return Err(filler("e", HUGE)),
                Mode::HeaderName => deliver(
                    unchanged,
                    vec![Header {
                        name: filler("bad header name ", HUGE),
                        value: "x".into(),
                    }],
                    None,
                ),
                Mode::HeaderValues => {
                    let headers = (0..BIG_HEADERS)
                        .map(|n| Header {
                            name: format!("X-Big-{n}"),
                            value: filler("a", BIG),
                        })
                        .collect();
                    deliver(unchanged, headers, None)
                }
                Mode::ContentType => {
                    deliver(unchanged, Vec::new(), Some(filler("text/plain", BIG)))
                }
                Mode::Stdout => {
                    // The plain way a plugin prints: a failed write panics.
                    print!("{}", flood('o', 1024, BIG / 1024));
                    eprint!("{}", flood('e', 1024, BIG / 1024));
                    let _ = std::io::stdout().flush();
                    deliver(unchanged, Vec::new(), None)
                }
                Mode::LogNewlines => {
                    for (level, line) in [Level::Error, Level::Warn, Level::Info]
                        .into_iter()
                        .zip(FORGED_LINES)
                    {
                        log(level, line);
                    }
                    println!("{}", FORGED_LINES[2]);
                    eprintln!("{}", FORGED_LINES[1]);
                    deliver(unchanged, Vec::new(), None)
                }
                Mode::LogFlood => {
                    for n in 0..LOG_FLOOD_CALLS {
                        log(Level::Info, &format!("flood line {n}"));
                    }
                    deliver(unchanged, Vec::new(), None)
                }
                Mode::Header(name) => deliver(
                    unchanged,
                    vec![Header {
                        name,
                        value: "x".into(),
                    }],
                    None,
                ),
                Mode::Random => {
                    let bytes = wasip2::random::random::get_random_bytes(RANDOM_BYTES);
                    std::hint::black_box(bytes);
                    deliver(unchanged, Vec::new(), None)
                }
            })
        }
    }

    export!(Strings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_picks_the_abuse() {
        assert_eq!(mode(r#"{"mode":"drop"}"#), Ok(Mode::Drop));
        assert_eq!(mode(r#"{"mode":"log-flood"}"#), Ok(Mode::LogFlood));
        assert_eq!(
            mode(r#"{"mode":"hop-by-hop","header":"Keep-Alive"}"#),
            Ok(Mode::Header("Keep-Alive".into()))
        );
        assert!(mode(r#"{"mode":"hop-by-hop"}"#).is_err());
        assert!(mode("{}").is_err());
        assert!(mode(r#"{"mode":"other"}"#).is_err());
    }

    #[test]
    fn fillers_have_the_exact_size() {
        assert_eq!(filler("bad header name ", HUGE).len(), HUGE);
        assert_eq!(filler("text/plain", BIG).len(), BIG);
        let out = flood('o', 1024, BIG / 1024);
        assert_eq!(out.len(), BIG);
        assert_eq!(out.lines().count(), 1024);
    }
}
