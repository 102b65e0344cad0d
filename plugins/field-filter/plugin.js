// field-filter in JavaScript: the same plugin as src/lib.rs, giving the same
// outcomes (see the README).

const MAX_SHOWN = 200;
const MISSING = Symbol("missing");

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

function readConfig(config) {
  if (!isObject(config)) throw new Error("config must be a JSON object");
  let [pointer, values, negate] = [null, null, false];
  for (const [key, value] of Object.entries(config)) {
    if (key === "pointer") {
      if (typeof value !== "string") throw new Error("config key `pointer` must be a string");
      pointer = checkPointer(value);
    } else if (key === "values") {
      if (!Array.isArray(value) || value.length === 0) {
        throw new Error("config key `values` must be a non-empty array of JSON values");
      }
      values = value;
    } else if (key === "negate") {
      if (value !== null && typeof value !== "boolean") throw new Error("config key `negate` must be a boolean");
      negate = value === true;
    } else {
      throw new Error(`unknown config key \`${key}\` (expected \`pointer\`, \`values\`, \`negate\`)`);
    }
  }
  if (pointer === null) throw new Error("config key `pointer` is missing");
  if (values === null) throw new Error("config key `values` is missing");
  return { pointer, values, negate };
}

function checkPointer(pointer) {
  const shownPointer = JSON.stringify(pointer);
  if (pointer !== "" && !pointer.startsWith("/")) {
    throw new Error(`config key \`pointer\` must be a JSON pointer (RFC 6901) starting with \`/\`, got ${shownPointer}`);
  }
  if (pointer.split("~").slice(1).some((rest) => !/^[01]/.test(rest))) {
    throw new Error(`config key \`pointer\` has an invalid escape (\`~\` must be followed by 0 or 1): ${shownPointer}`);
  }
  return pointer;
}

// The value at an RFC 6901 pointer, or MISSING.
function find(document, pointer) {
  for (const raw of pointer === "" ? [] : pointer.split("/").slice(1)) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (isObject(document) && Object.hasOwn(document, token)) {
      document = document[token];
    } else if (Array.isArray(document) && /^(0|[1-9][0-9]*)$/.test(token) && Number(token) < document.length) {
      document = document[Number(token)];
    } else {
      return MISSING;
    }
  }
  return document;
}

// JSON equality: 2 equals 2.0 but not "2" or true; objects whatever their order.
function jsonEq(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEq(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEq(a[k], b[k]));
  }
  return a === b;
}

// The UTF-8 length of one code point.
const utf8Len = (cp) => (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);

// Compact JSON, cut to at most MAX_SHOWN bytes of UTF-8 (on a character's
// boundary) and marked with "...".
function shown(value) {
  const text = JSON.stringify(value);
  let [bytes, end] = [0, 0];
  for (const ch of text) {
    bytes += utf8Len(ch.codePointAt(0));
    if (bytes > MAX_SHOWN) return text.slice(0, end) + "...";
    end += ch.length;
  }
  return text;
}

export function transform(event, config) {
  const { pointer, values, negate } = readConfig(config);
  const found = find(JSON.parse(event.payload), pointer);
  const matched = found !== MISSING && values.some((v) => jsonEq(v, found));
  if (matched !== negate) return { body: event.payload };
  const text = found === MISSING ? "missing" : shown(found);
  return negate
    ? { drop: `value at ${pointer} is ${text}, one of the excluded values` }
    : { drop: `value at ${pointer} is ${text}, not one of the accepted values` };
}
