//! `hostile-spin`: never returns from `transform` (a CPU-time limit test).

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit" });

    use std::hint::black_box;

    struct Spin;

    impl Guest for Spin {
        fn transform(_event: Event, _config: String) -> Result<Outcome, String> {
            // `black_box` keeps the optimizer from proving the loop useless.
            let mut counter = 0u64;
            loop {
                counter = black_box(counter.wrapping_add(1));
            }
        }
    }

    export!(Spin);
}
