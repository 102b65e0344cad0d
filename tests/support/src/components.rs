//! Components shaped by hand from WebAssembly text, for the sandbox's
//! per-component bounds: many core instances, memories or tables, a
//! function that is costly to compile, and a working transformer of the
//! largest shape the sandbox allows.

use std::fmt::Write;

/// Core instances one component may have.
pub const MAX_CORE_INSTANCES: usize = 32;
/// Memories one component may have.
pub const MAX_MEMORIES: usize = 4;
/// Tables one component may have.
pub const MAX_TABLES: usize = 16;

fn component(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("invalid component text: {e}"))
}

/// A component that instantiates a tiny core module `n` times. It does not
/// implement the world: it is refused before linking.
pub fn many_instances(n: usize) -> Vec<u8> {
    let mut text = String::from("(component\n  (core module $tiny (func (export \"f\")))\n");
    for _ in 0..n {
        text.push_str("  (core instance (instantiate $tiny))\n");
    }
    text.push(')');
    component(&text)
}

/// A component of `n` core modules, each defining one memory of at least
/// `pages` 64 KiB pages, each instantiated once. It does not implement the
/// world: it is refused before linking.
pub fn many_memories(n: usize, pages: u32) -> Vec<u8> {
    let mut text = String::from("(component\n");
    for i in 0..n {
        writeln!(
            text,
            "  (core module $m{i} (memory (export \"memory\") {pages}))"
        )
        .unwrap();
        writeln!(text, "  (core instance (instantiate $m{i}))").unwrap();
    }
    text.push(')');
    component(&text)
}

/// A component of `n` core modules, each defining one table of `elements`
/// function references, each instantiated once. It does not implement the
/// world.
pub fn many_tables(n: usize, elements: u32) -> Vec<u8> {
    let mut text = String::from("(component\n");
    for i in 0..n {
        writeln!(
            text,
            "  (core module $t{i} (table (export \"table\") {elements} funcref))"
        )
        .unwrap();
        writeln!(text, "  (core instance (instantiate $t{i}))").unwrap();
    }
    text.push(')');
    component(&text)
}

/// Locals of the compile bomb's one function.
pub const BOMB_LOCALS: usize = 10_000;
/// Branches of the compile bomb's one function.
pub const BOMB_BRANCHES: usize = 40_000;

/// A component of one core module with one function of [`BOMB_LOCALS`]
/// locals and [`BOMB_BRANCHES`] small `if`s that each read two locals and
/// write a third, all picked pseudo-randomly: under a megabyte of binary,
/// but a large, branchy SSA graph with thousands of live values for the
/// compiler.
pub fn compile_bomb() -> Vec<u8> {
    let mut text = String::with_capacity(BOMB_BRANCHES * 120);
    text.push_str("(component\n  (core module $bomb\n");
    text.push_str("    (func (export \"bomb\") (param i32) (result i32)\n      (local");
    for _ in 0..BOMB_LOCALS {
        text.push_str(" i32");
    }
    text.push_str(")\n");
    // Locals are 1..=BOMB_LOCALS (0 is the parameter).
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut local = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        1 + (seed >> 33) as usize % BOMB_LOCALS
    };
    for _ in 0..BOMB_BRANCHES {
        let (cond, a, b, dest) = (local(), local(), local(), local());
        writeln!(
            text,
            "      (if (local.get {cond}) (then (local.set {dest} (i32.mul (i32.add (local.get {a}) (local.get {b})) (i32.const 7)))))"
        )
        .unwrap();
    }
    text.push_str("      (local.get 1))\n  )\n  (core instance (instantiate $bomb))\n)");
    component(&text)
}

/// The `hookgate:plugin/types@0.1.0` instance a transformer imports its
/// types from, and the `transform` function type over them.
const TRANSFORMER_TYPES: &str = r#"
  (import "hookgate:plugin/types@0.1.0" (instance $types
    (type $header (record (field "name" string) (field "value" string)))
    (export "header" (type $header-t (eq $header)))
    (type $event (record
      (field "id" string)
      (field "event-type" string)
      (field "created-at" string)
      (field "endpoint-id" string)
      (field "payload" string)
      (field "headers" (list $header-t))))
    (export "event" (type $event-t (eq $event)))
    (type $delivery (record
      (field "body" string)
      (field "headers" (list $header-t))
      (field "content-type" (option string))))
    (export "delivery" (type $delivery-t (eq $delivery)))
    (type $outcome (variant (case "deliver" $delivery-t) (case "drop" string)))
    (export "outcome" (type $outcome-t (eq $outcome)))))
  (alias export $types "event" (type $event))
  (alias export $types "outcome" (type $outcome))
  (type $transform
    (func (param "event" $event) (param "config" string)
      (result (result $outcome (error string)))))
"#;

/// The core module of a transformer that delivers the payload unchanged:
/// a bump allocator for the host to lower the arguments with, and
/// `transform` writing `ok(deliver({body: payload, headers: [],
/// content-type: none}))` to a return area.
const DELIVER_UNCHANGED: &str = r#"
  (core module $main
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
      (local $at i32)
      (local $pages i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (global.set $next (i32.add (local.get $at) (local.get $size)))
      (local.set $pages
        (i32.sub
          (i32.shr_u (i32.add (global.get $next) (i32.const 65535)) (i32.const 16))
          (memory.size)))
      (if (i32.gt_s (local.get $pages) (i32.const 0))
        (then
          (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1))
            (then unreachable))))
      (local.get $at))
    ;; Arguments: five strings (pointer, length) and the header list of the
    ;; event, then the config; the payload is the fifth string.
    (func (export "transform")
      (param i32 i32 i32 i32 i32 i32 i32 i32)
      (param $payload i32) (param $payload_len i32)
      (param i32 i32 i32 i32)
      (result i32)
      ;; result: ok (0) at 16, its outcome at 20: deliver (0), the delivery
      ;; at 24: body at 24/28, headers at 32/36, content-type none at 40.
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.store8 (i32.const 20) (i32.const 0))
      (i32.store (i32.const 24) (local.get $payload))
      (i32.store (i32.const 28) (local.get $payload_len))
      (i32.store (i32.const 32) (i32.const 0))
      (i32.store (i32.const 36) (i32.const 0))
      (i32.store8 (i32.const 40) (i32.const 0))
      (i32.const 16)))
  (core instance $main (instantiate $main))
  (func $transform (type $transform)
    (canon lift (core func $main "transform")
      (memory (core memory $main "memory"))
      (realloc (core func $main "cabi_realloc"))))
  (export "transform" (func $transform))
"#;

/// A working transformer (it delivers the payload unchanged) of the largest
/// shape the sandbox allows: [`MAX_CORE_INSTANCES`] core instances,
/// [`MAX_MEMORIES`] memories and [`MAX_TABLES`] tables.
pub fn max_shape_transformer() -> Vec<u8> {
    let mut text = String::from("(component\n");
    text.push_str(TRANSFORMER_TYPES);
    text.push_str(DELIVER_UNCHANGED);
    // The transformer's own instance has one memory and no table.
    let extra_memories = MAX_MEMORIES - 1;
    let tables = MAX_TABLES;
    let extra_instances = MAX_CORE_INSTANCES - 1;
    assert!(extra_memories + tables <= extra_instances);
    text.push_str("  (core module $with-memory (memory 1))\n");
    text.push_str("  (core module $with-table (table 1 funcref))\n");
    text.push_str("  (core module $tiny (func (export \"f\")))\n");
    for i in 0..extra_instances {
        let module = if i < extra_memories {
            "$with-memory"
        } else if i < extra_memories + tables {
            "$with-table"
        } else {
            "$tiny"
        };
        writeln!(text, "  (core instance (instantiate {module}))").unwrap();
    }
    text.push(')');
    component(&text)
}

/// `wasm` with a custom section `name` of `len` bytes appended: the same
/// component to the runtime, but other bytes (another hash) and a chosen
/// size.
pub fn with_custom_section(wasm: &[u8], name: &str, len: usize) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::with_capacity(name.len() + len + 5);
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.resize(content.len() + len, 0);
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_component(wasm: &[u8]) -> bool {
        // The component layer: version 0x0d, layer 1.
        wasm.starts_with(b"\0asm\x0d\0\x01\0")
    }

    #[test]
    fn every_shape_parses_to_a_component() {
        for wasm in [
            many_instances(40),
            many_instances(510),
            many_memories(24, 512),
            many_tables(24, 1),
            max_shape_transformer(),
        ] {
            assert!(is_component(&wasm));
        }
    }

    #[test]
    fn the_compile_bomb_is_under_a_megabyte() {
        let wasm = compile_bomb();
        assert!(is_component(&wasm));
        assert!(
            (400 << 10..1 << 20).contains(&wasm.len()),
            "{} bytes",
            wasm.len()
        );
    }

    #[test]
    fn a_custom_section_pads_to_the_size_asked() {
        let base = many_instances(1);
        let padded = with_custom_section(&base, "pad", 300_000);
        assert!(is_component(&padded));
        assert_eq!(padded.len(), base.len() + 300_000 + 4 + 3 + 1);
        wat::parse_bytes(&padded).unwrap();
    }
}
