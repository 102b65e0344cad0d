//! `hostile-wrong-world`: a valid component of another world
//! (`other:thing/other`), which hookgate must refuse to register.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: "
            package other:thing;

            world other {
                export handle: func(input: string) -> string;
            }
        ",
        world: "other",
    });

    struct WrongWorld;

    impl Guest for WrongWorld {
        fn handle(input: String) -> String {
            input
        }
    }

    export!(WrongWorld);
}
