// Runs a JavaScript hookgate plugin (a module exporting
// `transform(event, config)`) on cases read from stdin, one JSON object a
// line: {"event": {"id", "event_type", "created_at", "endpoint_id",
// "payload", "headers": [[name, value], ...]}, "config": "<JSON text>"},
// and prints one outcome a line, in the shape the tests compare with the
// gateway's: {"outcome": "deliver", "body", "headers": [[name, value]],
// "content_type"}, {"outcome": "drop", "reason"} or {"outcome": "error",
// "error"}.
//
// It gives the plugin what the gateway's JavaScript plugins get (the
// contract in plugins/templates/js/README.md): the config parsed (`{}` when
// empty), the event as {id, type, created_at, endpoint_id, data, headers,
// payload} with `data` the payload's data member (null when none) and
// `headers` an object; a string body is sent as it is, anything else as
// JSON; a throw is a failure.
//
//   node run-plugin.mjs path/to/plugin.js < cases.jsonl

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node run-plugin.mjs PLUGIN.js < cases.jsonl");
  process.exit(2);
}
const plugin = await import(pathToFileURL(resolve(file)).href);
if (typeof plugin.transform !== "function") {
  console.error(`${file} does not export a function transform(event, config)`);
  process.exit(2);
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

function call({ event, config }) {
  const text = config.trim();
  let parsedConfig;
  try {
    parsedConfig = text === "" ? {} : JSON.parse(text);
  } catch (e) {
    throw new Error(`config is not valid JSON: ${e.message}`);
  }
  let payload;
  try {
    payload = JSON.parse(event.payload);
  } catch (e) {
    throw new Error(`payload is not valid JSON: ${e.message}`);
  }
  const result = plugin.transform(
    {
      id: event.id,
      type: event.event_type,
      created_at: event.created_at,
      endpoint_id: event.endpoint_id,
      data: isObject(payload) && Object.hasOwn(payload, "data") ? payload.data : null,
      headers: Object.fromEntries(event.headers),
      payload: event.payload,
    },
    parsedConfig,
  );
  if (!isObject(result)) throw new Error("transform must return an object: {body} or {drop}");
  if (Object.hasOwn(result, "drop")) return { outcome: "drop", reason: String(result.drop) };
  if (!Object.hasOwn(result, "body")) throw new Error("transform must return {body, headers?, content_type?} or {drop}");
  const body = typeof result.body === "string" ? result.body : JSON.stringify(result.body);
  const headers = Object.entries(result.headers ?? {}).map(([name, value]) => [name, String(value)]);
  return { outcome: "deliver", body, headers, content_type: result.content_type ?? null };
}

const lines = readFileSync(0, "utf8").split("\n").filter((line) => line.trim() !== "");
for (const line of lines) {
  let out;
  try {
    out = call(JSON.parse(line));
  } catch (e) {
    out = { outcome: "error", error: String(e?.message ?? e) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
