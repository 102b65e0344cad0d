//! `js-engine`: the gateway's JavaScript engine, QuickJS (through
//! rquickjs) built as one component of the `js-engine` world
//! (`wit/js-engine.wit`). Every JavaScript plugin runs in it: the script is
//! data (compiled to the engine's bytecode once, in the sandbox, passed
//! with each call), so the engine is compiled once per gateway
//! and every call still gets a fresh instance, with the sandbox's limits.
//!
//! A script is an ES module exporting `transform(event, config)`:
//!
//! - `event` is `{ id, type, created_at, endpoint_id, data, headers,
//!   payload }`: `payload` is the text about to be sent (the JSON envelope,
//!   or what the previous plugin returned), `data` the envelope's `data`
//!   member (`null` when the payload is not JSON or has none; parsed on
//!   first read), `headers` the headers earlier plugins added, name →
//!   value. The Rust SDK and the Python glue give the same fields;
//! - `config` is the endpoint's configuration for the plugin, parsed;
//! - it returns `{ body, headers?, content_type? }` (a string body is sent
//!   as is, anything else as compact JSON) or `{ drop: reason }`; a throw
//!   is a plugin failure. An `async` transform's promise is awaited.
//!
//! `console.log` (and `debug`, `info`, `warn`, `error`) write to the
//! gateway's log through the world's `log` import.
//!
//! The logic is plain Rust over rquickjs ([`Engine`], and [`compile`] and
//! [`transform`] on a new one), so it also runs natively in tests; the
//! `component` module (wasm32 only) wires it to the world.
//!
//! Starting the engine (runtime, context, built-ins, glue) is most of a
//! short call's work, and the same in every call. So the world's `prepare`
//! builds an [`Engine`] once; the gateway runs it when it loads the engine
//! and snapshots the instance's memory (pre-initialisation), and every call
//! then starts, fresh, from that ready engine. What differs per call is set
//! per call: the log sink, its line count, and the `Math.random` seed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rquickjs::context::intrinsic;
use rquickjs::module::{Declared, WriteOptions};
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, Module, Object, Persistent, Runtime, Value,
};

/// The name scripts are given in messages and stack traces.
pub const SCRIPT_NAME: &str = "plugin.js";
/// Native stack the engine lets scripts use before it throws a
/// `RangeError`: well inside the component's own stack.
const MAX_STACK: usize = 256 << 10;
/// Log lines passed on per call; the gateway keeps no more than this
/// either, so further calls would only cost crossings.
pub const MAX_LOG_CALLS: usize = 20;

/// A log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// One event, as the gateway passes it.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub created_at: &'a str,
    pub endpoint_id: &'a str,
    pub payload: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
}

/// What the script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deliver {
        body: String,
        headers: Vec<(String, String)>,
        content_type: Option<String>,
    },
    Drop(String),
}

/// Why a script was refused at upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based; 0 when the engine did not say.
    pub line: u32,
    pub message: String,
}

/// What the engine adds to every context: `console`, and the function that
/// turns the host's event into the script's and its answer back. In
/// JavaScript, as that is where the values live; it runs before the
/// script, which cannot reach it (it is not a global).
const GLUE: &str = r#"
(function (hostLog) {
  const format = (args) => args.map((a) => {
    if (typeof a === "string") return a;
    try { const t = JSON.stringify(a); return t === undefined ? String(a) : t; }
    catch (_) { return String(a); }
  }).join(" ");
  const level = (n) => (...args) => hostLog(n, format(args));
  globalThis.console = {
    debug: level(0), log: level(1), info: level(1), warn: level(2), error: level(3),
  };
  // `Math.random` is xoshiro128** seeded per call by `seed`: the engine's
  // own generator would be seeded once, when the engine was prepared, and
  // so give every call the same numbers.
  let s0 = 1, s1 = 2, s2 = 3, s3 = 4;
  const next = () => {
    const out = Math.imul(((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25)), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    return out;
  };
  Object.defineProperty(Math, "random", {
    value: function random() { return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992; },
    writable: true, configurable: true, enumerable: false,
  });
  const describe = (v) => v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
  return {
    seed(a, b, c, d) {
      s0 = a | 0; s1 = b | 0; s2 = c | 0; s3 = d | 0;
      if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
    },
    event(id, type, created_at, endpoint_id, payload, names, values) {
      const headers = {};
      for (let i = 0; i < names.length; i++) headers[names[i]] = values[i];
      const event = { id, type, created_at, endpoint_id, headers, payload };
      // `data` is parsed on first read: a script that only looks at the
      // type or passes `payload` on never pays for the parse.
      let data;
      let parsed = false;
      Object.defineProperty(event, "data", {
        enumerable: true,
        get() {
          if (!parsed) {
            parsed = true;
            data = null;
            try {
              const envelope = JSON.parse(payload);
              if (envelope !== null && typeof envelope === "object" && !Array.isArray(envelope)
                && "data" in envelope) data = envelope.data;
            } catch (_) {}
          }
          return data;
        },
        set(v) { parsed = true; data = v; },
      });
      return event;
    },
    answer(r) {
      if (r === null || typeof r !== "object" || Array.isArray(r)) {
        throw new TypeError("transform must return { body }, { body, headers, content_type } or { drop: reason }, not " + describe(r));
      }
      if ("drop" in r && r.drop !== undefined) return { drop: String(r.drop) };
      if (!("body" in r) || r.body === undefined) {
        throw new TypeError("the result of transform has no body (return { body } or { drop: reason })");
      }
      let body = r.body;
      if (typeof body !== "string") {
        body = JSON.stringify(body);
        if (body === undefined) throw new TypeError("the body cannot be written as JSON: " + describe(r.body));
      }
      const names = [], values = [];
      if (r.headers !== undefined && r.headers !== null) {
        if (typeof r.headers !== "object" || Array.isArray(r.headers)) {
          throw new TypeError("headers must be an object of name: value, not " + describe(r.headers));
        }
        for (const [n, v] of Object.entries(r.headers)) { names.push(n); values.push(String(v)); }
      }
      let content_type = null;
      if (r.content_type !== undefined && r.content_type !== null) {
        if (typeof r.content_type !== "string") throw new TypeError("content_type must be a string, not " + describe(r.content_type));
        content_type = r.content_type;
      }
      return { body, names, values, content_type };
    },
  };
})
"#;

/// The built-ins a script gets: the language's base objects and these.
/// Every call starts a context afresh, and each built-in costs its set-up;
/// a transform has no use for `Proxy`, `WeakRef`, `performance` or
/// `DOMException`, so they are left out (a fifth of a call's start-up).
type BuiltIns = (
    intrinsic::Eval,
    intrinsic::Json,
    intrinsic::Promise,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Date,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
);

fn runtime() -> Result<(Runtime, Context), String> {
    let rt = Runtime::new().map_err(|e| format!("cannot start the engine: {e}"))?;
    rt.set_max_stack_size(MAX_STACK);
    let ctx =
        Context::custom::<BuiltIns>(&rt).map_err(|e| format!("cannot start the engine: {e}"))?;
    Ok((rt, ctx))
}

/// What a caught error says: the exception's `Name: message`, and the line
/// of the script it points at.
fn describe(error: CaughtError<'_>) -> ScriptError {
    match error {
        CaughtError::Exception(e) => {
            let name: Option<String> = e.as_object().get("name").ok();
            let message = e.message().unwrap_or_default();
            let message = match name {
                Some(name) if !name.is_empty() => format!("{name}: {message}"),
                _ => message,
            };
            let line = e
                .as_object()
                .get::<_, Option<i32>>("lineNumber")
                .ok()
                .flatten()
                .or_else(|| e.stack().and_then(|stack| line_in(&stack)))
                .map_or(0, |l| l.max(0) as u32);
            ScriptError { line, message }
        }
        CaughtError::Value(v) => ScriptError {
            line: 0,
            message: format!("uncaught {}", thrown(&v)),
        },
        CaughtError::Error(e) => ScriptError {
            line: 0,
            message: e.to_string(),
        },
    }
}

/// A thrown value that is not an `Error`, as text.
fn thrown(v: &Value<'_>) -> String {
    if let Some(s) = v.as_string().and_then(|s| s.to_string().ok()) {
        return s;
    }
    let ctx = v.ctx();
    ctx.json_stringify(v.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("{:?}", v.type_of()))
}

/// The first `plugin.js:LINE` in a stack trace.
fn line_in(stack: &str) -> Option<i32> {
    let at = stack.find(SCRIPT_NAME)? + SCRIPT_NAME.len();
    let rest = stack[at..].strip_prefix(':')?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Evaluates a declared module (its top level runs) and returns its
/// `transform`.
fn exported_transform<'js>(
    ctx: &Ctx<'js>,
    declared: Module<'js, Declared>,
) -> Result<Function<'js>, ScriptError> {
    let (module, promise) = declared.eval().catch(ctx).map_err(describe)?;
    promise.finish::<()>().catch(ctx).map_err(describe)?;
    let transform: Value = module.get("transform").catch(ctx).map_err(describe)?;
    match transform.into_function() {
        Some(f) => Ok(f),
        None => Err(ScriptError {
            line: 0,
            message: "the script must export a function transform(event, config)".into(),
        }),
    }
}

/// An error as one line of text: the message, and the line when known.
fn one_line(e: ScriptError) -> String {
    if e.line > 0 {
        format!("{} (line {})", e.message, e.line)
    } else {
        e.message
    }
}

/// The log a call writes to.
type Log = Box<dyn Fn(Level, &str)>;

/// Where `console` writes: the current call's log, at most
/// [`MAX_LOG_CALLS`] lines of it.
#[derive(Default)]
struct Sink {
    lines: Cell<usize>,
    log: RefCell<Option<Log>>,
}

impl Sink {
    fn write(&self, level: i32, message: &str) {
        if self.lines.get() >= MAX_LOG_CALLS {
            return;
        }
        self.lines.set(self.lines.get() + 1);
        let level = match level {
            0 => Level::Debug,
            1 => Level::Info,
            2 => Level::Warn,
            _ => Level::Error,
        };
        if let Some(log) = self.log.borrow().as_ref() {
            log(level, message);
        }
    }
}

/// A started engine: runtime, context and glue, ready for one call
/// ([`Engine::compile`] or [`Engine::transform`]); the script is declared
/// as a module in it, so a second call would find the first one's.
pub struct Engine {
    // Fields drop in order: the glue and the context before the runtime.
    glue: Persistent<Object<'static>>,
    context: Context,
    _runtime: Runtime,
    sink: Rc<Sink>,
}

impl Engine {
    pub fn new() -> Result<Self, String> {
        let (runtime, context) = runtime()?;
        let sink = Rc::new(Sink::default());
        let writer = sink.clone();
        let glue = context.with(|ctx| {
            let started = |e: rquickjs::Error| format!("cannot start the engine: {e}");
            let host_log = Function::new(ctx.clone(), move |level: i32, message: String| {
                writer.write(level, &message)
            })
            .map_err(started)?;
            let glue: Function = ctx.eval(GLUE).map_err(started)?;
            let glue: Object = glue.call((host_log,)).map_err(started)?;
            Ok::<_, String>(Persistent::save(&ctx, glue))
        })?;
        Ok(Self {
            glue,
            context,
            _runtime: runtime,
            sink,
        })
    }

    /// Parses `script` as an ES module, checks that it exports a function
    /// `transform` and that its top level runs (as it will on every call;
    /// what it logs is dropped), and returns the module as bytecode for
    /// [`Engine::transform`]. The bytecode keeps line numbers for messages
    /// and stack traces, not the source text (`toString` of a function
    /// does not show its code).
    pub fn compile(&self, script: &str) -> Result<Vec<u8>, ScriptError> {
        self.context.with(|ctx| {
            self.seed(&ctx)
                .map_err(|message| ScriptError { line: 0, message })?;
            let declared = Module::declare(ctx.clone(), SCRIPT_NAME, script)
                .catch(&ctx)
                .map_err(describe)?;
            let code = declared
                .write(WriteOptions {
                    strip_source: true,
                    ..WriteOptions::default()
                })
                .catch(&ctx)
                .map_err(describe)?;
            exported_transform(&ctx, declared)?;
            Ok(code)
        })
    }

    /// Runs the `transform` of a module [`Engine::compile`] made (in this
    /// engine or another of the same build) on one event. `log` receives
    /// what the script writes to `console`, at most [`MAX_LOG_CALLS`]
    /// lines.
    ///
    /// `code` must be what `compile` returned: the engine trusts bytecode
    /// as it trusts itself. The gateway only passes back, unchanged, what a
    /// sandboxed `compile` of its own gave it; and even forged bytecode
    /// could only harm the one instance it runs in, inside the sandbox.
    pub fn transform(
        &self,
        code: &[u8],
        event: &Event<'_>,
        config: &str,
        log: impl Fn(Level, &str) + 'static,
    ) -> Result<Verdict, String> {
        self.sink.lines.set(0);
        *self.sink.log.borrow_mut() = Some(Box::new(log));
        let verdict = self.context.with(|ctx| {
            self.seed(&ctx)?;
            let glue = self.glue.clone().restore(&ctx).map_err(|e| e.to_string())?;
            run(&ctx, &glue, code, event, config)
        });
        self.sink.log.borrow_mut().take();
        verdict
    }

    /// Seeds `Math.random` for this call.
    fn seed(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| format!("no random seed: {e}"))?;
        let word =
            |i: usize| i32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        let glue = self.glue.clone().restore(ctx).map_err(|e| e.to_string())?;
        let seed: Function = glue.get("seed").map_err(|e| e.to_string())?;
        seed.call::<_, ()>((word(0), word(1), word(2), word(3)))
            .map_err(|e| e.to_string())
    }
}

/// Compiles `script` in a new engine (see [`Engine::compile`]).
pub fn compile(script: &str) -> Result<Vec<u8>, ScriptError> {
    Engine::new()
        .map_err(|message| ScriptError { line: 0, message })?
        .compile(script)
}

/// Compiles `script` in a new engine and runs it on one event in another,
/// as the gateway does (see [`Engine::transform`]).
pub fn transform(
    script: &str,
    event: &Event<'_>,
    config: &str,
    log: impl Fn(Level, &str) + 'static,
) -> Result<Verdict, String> {
    let code = compile(script).map_err(one_line)?;
    Engine::new()?.transform(&code, event, config, log)
}

fn run<'js>(
    ctx: &Ctx<'js>,
    glue: &Object<'js>,
    code: &[u8],
    event: &Event<'_>,
    config: &str,
) -> Result<Verdict, String> {
    let fail = |e: CaughtError<'_>| one_line(describe(e));
    // SAFETY: `code` is bytecode `Engine::compile` wrote (see
    // `Engine::transform`); it outlives the module, which QuickJS may
    // point into, as both last until the call ends.
    let declared = unsafe { Module::load(ctx.clone(), code) }
        .catch(ctx)
        .map_err(fail)?;
    let transform = exported_transform(ctx, declared).map_err(one_line)?;

    let make_event: Function = glue.get("event").catch(ctx).map_err(fail)?;
    let names: Vec<&str> = event.headers.iter().map(|(n, _)| *n).collect();
    let values: Vec<&str> = event.headers.iter().map(|(_, v)| *v).collect();
    let js_event: Value = make_event
        .call((
            event.id,
            event.event_type,
            event.created_at,
            event.endpoint_id,
            event.payload,
            names,
            values,
        ))
        .catch(ctx)
        .map_err(fail)?;
    // No configuration is an empty object, as in the Rust SDK and Python.
    let config = match config.trim() {
        "" => "{}",
        text => text,
    };
    let js_config: Value = ctx
        .json_parse(config)
        .catch(ctx)
        .map_err(|e| format!("the configuration is not JSON: {}", fail(e)))?;

    let mut returned: Value = transform
        .call((js_event, js_config))
        .catch(ctx)
        .map_err(fail)?;
    if let Some(promise) = returned.as_promise() {
        returned = promise.finish::<Value>().catch(ctx).map_err(fail)?;
    }
    let answer: Function = glue.get("answer").catch(ctx).map_err(fail)?;
    let answer: Object = answer.call((returned,)).catch(ctx).map_err(fail)?;
    if let Some(reason) = answer
        .get::<_, Option<String>>("drop")
        .catch(ctx)
        .map_err(fail)?
    {
        return Ok(Verdict::Drop(reason));
    }
    let body: String = answer.get("body").catch(ctx).map_err(fail)?;
    let names: Vec<String> = answer.get("names").catch(ctx).map_err(fail)?;
    let values: Vec<String> = answer.get("values").catch(ctx).map_err(fail)?;
    let content_type: Option<String> = answer.get("content_type").catch(ctx).map_err(fail)?;
    Ok(Verdict::Deliver {
        body,
        headers: names.into_iter().zip(values).collect(),
        content_type,
    })
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "js-engine", path: "../../wit" });

    use hookgate::plugin::log::{Level as WitLevel, log};
    use hookgate::plugin::types::{Delivery, Header};

    struct Component;

    thread_local! {
        /// The engine every call of this instance uses, built by `prepare`
        /// (before the snapshot), or by the first call when there was none.
        static ENGINE: std::cell::OnceCell<Result<super::Engine, String>> =
            const { std::cell::OnceCell::new() };
    }

    fn with_engine<R>(f: impl FnOnce(&super::Engine) -> R) -> Result<R, String> {
        ENGINE.with(|engine| match engine.get_or_init(super::Engine::new) {
            Ok(engine) => Ok(f(engine)),
            Err(e) => Err(e.clone()),
        })
    }

    impl Guest for Component {
        fn prepare() {
            // An engine that cannot start says so on the first call.
            let _ = with_engine(|_| ());
        }

        fn compile(script: String) -> Result<Vec<u8>, ScriptError> {
            let compiled = with_engine(|engine| engine.compile(&script))
                .unwrap_or_else(|message| Err(super::ScriptError { line: 0, message }));
            compiled.map_err(|e| ScriptError {
                line: e.line,
                message: e.message,
            })
        }

        fn transform(code: Vec<u8>, event: Event, config: String) -> Result<Outcome, String> {
            let input = super::Event {
                id: &event.id,
                event_type: &event.event_type,
                created_at: &event.created_at,
                endpoint_id: &event.endpoint_id,
                payload: &event.payload,
                headers: event
                    .headers
                    .iter()
                    .map(|h| (h.name.as_str(), h.value.as_str()))
                    .collect(),
            };
            let verdict = with_engine(|engine| {
                engine.transform(&code, &input, &config, |level, message| {
                    let level = match level {
                        super::Level::Debug => WitLevel::Debug,
                        super::Level::Info => WitLevel::Info,
                        super::Level::Warn => WitLevel::Warn,
                        super::Level::Error => WitLevel::Error,
                    };
                    log(level, message);
                })
            })??;
            Ok(match verdict {
                super::Verdict::Deliver {
                    body,
                    headers,
                    content_type,
                } => Outcome::Deliver(Delivery {
                    body,
                    headers: headers
                        .into_iter()
                        .map(|(name, value)| Header { name, value })
                        .collect(),
                    content_type,
                }),
                super::Verdict::Drop(reason) => Outcome::Drop(reason),
            })
        }
    }

    export!(Component);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn event(payload: &str) -> Event<'_> {
        Event {
            id: "evt_1",
            event_type: "booking.created",
            created_at: "2026-01-01T00:00:00Z",
            endpoint_id: "wh_1",
            payload,
            headers: vec![("X-Prev", "1")],
        }
    }

    const ENVELOPE: &str = r#"{"id":"evt_1","type":"booking.created","created_at":"2026-01-01T00:00:00Z","data":{"booking":{"id":"bk_1"}}}"#;

    fn run(script: &str) -> Result<Verdict, String> {
        transform(script, &event(ENVELOPE), r#"{"k":"v"}"#, |_, _| {})
    }

    #[test]
    fn an_object_body_is_sent_as_compact_json() {
        let out = run(
            "export function transform(e, c) { return { body: { deal: e.data.booking.id, k: c.k, t: e.type, h: e.headers['X-Prev'] } }; }",
        );
        assert_eq!(
            out,
            Ok(Verdict::Deliver {
                body: r#"{"deal":"bk_1","k":"v","t":"booking.created","h":"1"}"#.into(),
                headers: vec![],
                content_type: None
            })
        );
    }

    #[test]
    fn a_string_body_headers_and_content_type_are_kept() {
        let out = run(
            "export function transform(e) { return { body: 'a=1', headers: { 'X-A': 'b', 'X-N': 2 }, content_type: 'text/plain' }; }",
        );
        assert_eq!(
            out,
            Ok(Verdict::Deliver {
                body: "a=1".into(),
                headers: vec![("X-A".into(), "b".into()), ("X-N".into(), "2".into())],
                content_type: Some("text/plain".into())
            })
        );
    }

    #[test]
    fn drop_throw_and_bad_results_are_told_apart() {
        assert_eq!(
            run("export function transform() { return { drop: 'not ours' }; }"),
            Ok(Verdict::Drop("not ours".into()))
        );
        let thrown =
            run("export function transform() {\n  throw new Error('no booking');\n}").unwrap_err();
        assert!(thrown.contains("Error: no booking"), "{thrown}");
        assert!(thrown.contains("line 2"), "{thrown}");
        assert!(
            run("export function transform() { throw 'plain'; }")
                .unwrap_err()
                .contains("plain")
        );
        let none = run("export function transform() {}").unwrap_err();
        assert!(none.contains("not undefined"), "{none}");
        let no_body = run("export function transform() { return {}; }").unwrap_err();
        assert!(no_body.contains("no body"), "{no_body}");
    }

    #[test]
    fn an_async_transform_is_awaited() {
        assert_eq!(
            run("export async function transform(e) { await null; return { body: e.id }; }"),
            Ok(Verdict::Deliver {
                body: "evt_1".into(),
                headers: vec![],
                content_type: None
            })
        );
    }

    #[test]
    fn a_script_has_the_built_ins_a_transform_uses() {
        let script = "export function transform(e) { const m = new Map([[1, 2]]); \
            return { body: { re: /b+/.test('abbc'), date: new Date(0).toISOString(), \
            m: m.get(1), u8: new Uint8Array(2).length, set: new Set([1, 1]).size, \
            p: typeof Promise, proxy: typeof Proxy } }; }";
        let out = transform(script, &event(ENVELOPE), "{}", |_, _| {}).unwrap();
        let want = r#"{"re":true,"date":"1970-01-01T00:00:00.000Z","m":2,"u8":2,"set":1,"p":"function","proxy":"undefined"}"#;
        assert!(
            matches!(&out, Verdict::Deliver { body, .. } if body == want),
            "{out:?}"
        );
    }

    #[test]
    fn math_random_is_seeded_per_call() {
        let script = "export function transform() { const r = Math.random(); \
            return { body: { r, ok: r >= 0 && r < 1, name: Math.random.name } }; }";
        let code = compile(script).unwrap();
        let first = Engine::new()
            .unwrap()
            .transform(&code, &event(ENVELOPE), "{}", |_, _| {});
        let second = transform(script, &event(ENVELOPE), "{}", |_, _| {});
        let body = |v: &Result<Verdict, String>| match v {
            Ok(Verdict::Deliver { body, .. }) => body.clone(),
            other => panic!("{other:?}"),
        };
        assert!(
            body(&first).contains(r#""ok":true,"name":"random""#),
            "{first:?}"
        );
        assert_ne!(body(&first), body(&second));
    }

    #[test]
    fn no_configuration_is_an_empty_object() {
        let script = "export function transform(e, c) { return { body: { c } }; }";
        for config in ["", "  "] {
            let out = transform(script, &event(ENVELOPE), config, |_, _| {}).unwrap();
            assert!(
                matches!(&out, Verdict::Deliver { body, .. } if body == r#"{"c":{}}"#),
                "{out:?}"
            );
        }
    }

    #[test]
    fn data_is_the_envelopes_member_and_null_otherwise_and_payload_the_text() {
        let script =
            "export function transform(e) { return { body: { d: e.data, p: e.payload } }; }";
        let out = transform(script, &event(r#"{"data":[1,2]}"#), "{}", |_, _| {}).unwrap();
        assert!(
            matches!(&out, Verdict::Deliver { body, .. } if body == r#"{"d":[1,2],"p":"{\"data\":[1,2]}"}"#),
            "{out:?}"
        );
        for payload in ["[1,2]", "a=1", r#"{"other":1}"#] {
            let out = transform(script, &event(payload), "{}", |_, _| {}).unwrap();
            let want = format!(r#"{{"d":null,"p":"{}"}}"#, payload.replace('"', "\\\""));
            assert!(
                matches!(&out, Verdict::Deliver { body, .. } if *body == want),
                "{out:?}"
            );
        }
        let script = "export function transform(e) { e.data = 7; return { body: { d: e.data } }; }";
        let out = transform(script, &event(ENVELOPE), "{}", |_, _| {}).unwrap();
        assert!(
            matches!(&out, Verdict::Deliver { body, .. } if body == r#"{"d":7}"#),
            "{out:?}"
        );
    }

    #[test]
    fn console_goes_to_the_log_at_most_max_log_calls_lines() {
        let lines = Rc::new(RefCell::new(Vec::new()));
        let seen = lines.clone();
        let script = "export function transform(e) { console.warn('w', {a: 1}); for (let i = 0; i < 1000; i++) console.log(i); return { body: '' }; }";
        transform(script, &event(ENVELOPE), "{}", move |level, message| {
            seen.borrow_mut().push((level, message.to_string()))
        })
        .unwrap();
        let lines = lines.borrow();
        assert_eq!(lines.len(), MAX_LOG_CALLS);
        assert_eq!(lines[0], (Level::Warn, r#"w {"a":1}"#.to_string()));
        assert_eq!(lines[1], (Level::Info, "0".to_string()));
    }

    #[test]
    fn compile_names_the_line_of_a_syntax_error() {
        let e = compile("export function transform(e) {\n  return { body: e.id \n}\n").unwrap_err();
        assert!(e.message.starts_with("SyntaxError"), "{e:?}");
        assert!(e.line >= 2, "{e:?}");
        assert!(compile("export function transform(e) { return { body: '' }; }").is_ok());
        let missing = compile("export const x = 1;").unwrap_err();
        assert!(
            missing.message.contains("export a function transform"),
            "{missing:?}"
        );
    }

    #[test]
    fn deep_recursion_is_a_range_error() {
        let e =
            run("function f(n) { return f(n + 1) + 1; }\nexport function transform() { f(0); }")
                .unwrap_err();
        assert!(e.contains("RangeError") || e.contains("stack"), "{e}");
    }
}
