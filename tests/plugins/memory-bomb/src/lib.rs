//! `hostile-memory-bomb`: allocates and touches 1 MiB chunks, all kept alive,
//! until allocation fails (a memory-limit test). The failed allocation
//! aborts (`handle_alloc_error` with `panic = "abort"`), which traps.

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit" });

    use std::hint::black_box;

    const CHUNK: usize = 1 << 20;

    struct MemoryBomb;

    impl Guest for MemoryBomb {
        fn transform(_event: Event, _config: String) -> Result<Outcome, String> {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            loop {
                // Infallible: when memory.grow is refused this aborts (traps).
                // A non-zero fill writes every byte (a zeroed allocation
                // could skip touching fresh pages).
                let chunk = vec![(chunks.len() as u8) | 1; CHUNK];
                chunks.push(black_box(chunk));
                black_box(&chunks);
            }
        }
    }

    export!(MemoryBomb);
}
