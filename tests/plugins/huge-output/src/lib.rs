//! `hostile-huge-output`: delivers an 8 MiB body (an output-size limit test).

/// The exact size of the body, in bytes.
pub const BODY_BYTES: usize = 8 << 20;

/// A valid JSON document of exactly [`BODY_BYTES`] bytes.
pub fn huge_body() -> String {
    const OPEN: &str = r#"{"padding":""#;
    const CLOSE: &str = r#""}"#;
    let mut body = String::with_capacity(BODY_BYTES);
    body.push_str(OPEN);
    body.extend(std::iter::repeat_n(
        'x',
        BODY_BYTES - OPEN.len() - CLOSE.len(),
    ));
    body.push_str(CLOSE);
    body
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit" });

    use hookgate::plugin::types::Delivery;

    struct HugeOutput;

    impl Guest for HugeOutput {
        fn transform(_event: Event, _config: String) -> Result<Outcome, String> {
            Ok(Outcome::Deliver(Delivery {
                body: super::huge_body(),
                headers: Vec::new(),
                content_type: None,
            }))
        }
    }

    export!(HugeOutput);
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_is_exactly_8_mib_of_json() {
        let body = super::huge_body();
        assert_eq!(body.len(), 8 * 1024 * 1024);
        assert!(body.starts_with(r#"{"padding":"xxx"#) && body.ends_with(r#"xxx"}"#));
    }
}
