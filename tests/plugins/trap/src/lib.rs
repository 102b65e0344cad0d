//! `hostile-trap`: panics in `transform`; with `panic = "abort"` that traps.

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit" });

    struct Trap;

    impl Guest for Trap {
        fn transform(event: Event, _config: String) -> Result<Outcome, String> {
            panic!("hostile-trap: deliberate panic on event {}", event.id)
        }
    }

    export!(Trap);
}
