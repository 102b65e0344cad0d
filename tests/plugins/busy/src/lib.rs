//! `honest-busy`: a well-behaved but slow plugin. It spins for the config's
//! `busy_ms` milliseconds of wall time, then delivers the payload unchanged.

use std::time::Duration;

/// How long to spin, from config `{"busy_ms": N}` (none: zero).
pub fn busy_time(config: &str) -> Result<Duration, String> {
    let config: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    match config.get("busy_ms") {
        None => Ok(Duration::ZERO),
        Some(ms) => ms
            .as_u64()
            .map(Duration::from_millis)
            .ok_or_else(|| format!("busy_ms must be a whole number, not {ms}")),
    }
}

/// Spins until `time` has passed; returns the spin count.
pub fn spin_for(time: Duration) -> u64 {
    let started = std::time::Instant::now();
    let mut spins = 0u64;
    while started.elapsed() < time {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
    spins
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit" });

    use hookgate::plugin::types::Delivery;

    struct Busy;

    impl Guest for Busy {
        fn transform(event: Event, config: String) -> Result<Outcome, String> {
            super::spin_for(super::busy_time(&config)?);
            Ok(Outcome::Deliver(Delivery {
                body: event.payload,
                headers: Vec::new(),
                content_type: None,
            }))
        }
    }

    export!(Busy);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{busy_time, spin_for};

    #[test]
    fn config_sets_the_busy_time() {
        assert_eq!(busy_time("{}"), Ok(Duration::ZERO));
        assert_eq!(
            busy_time(r#"{"busy_ms": 40}"#),
            Ok(Duration::from_millis(40))
        );
        assert!(busy_time(r#"{"busy_ms": "soon"}"#).is_err());
    }

    #[test]
    fn spins_at_least_the_time() {
        let started = Instant::now();
        spin_for(Duration::from_millis(5));
        assert!(started.elapsed() >= Duration::from_millis(5));
    }
}
