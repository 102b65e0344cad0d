"""field-filter in Python: the same plugin as src/lib.rs, giving the same
outcomes (see the README). Build it as the `app.py` of a project written by
`hookgate plugin new --lang python`.
"""

import json
import re

MAX_SHOWN = 200
MISSING = object()


def read_config(config):
    if not isinstance(config, dict):
        raise ValueError("config must be a JSON object")
    pointer, values, negate = None, None, False
    for key, value in config.items():
        if key == "pointer":
            if not isinstance(value, str):
                raise ValueError("config key `pointer` must be a string")
            pointer = check_pointer(value)
        elif key == "values":
            if not isinstance(value, list) or not value:
                raise ValueError("config key `values` must be a non-empty array of JSON values")
            values = value
        elif key == "negate":
            if value is not None and not isinstance(value, bool):
                raise ValueError("config key `negate` must be a boolean")
            negate = bool(value)
        else:
            raise ValueError(f"unknown config key `{key}` (expected `pointer`, `values`, `negate`)")
    if pointer is None:
        raise ValueError("config key `pointer` is missing")
    if values is None:
        raise ValueError("config key `values` is missing")
    return pointer, values, negate


def check_pointer(pointer):
    shown = json.dumps(pointer, ensure_ascii=False)
    if pointer and not pointer.startswith("/"):
        raise ValueError(f"config key `pointer` must be a JSON pointer (RFC 6901) starting with `/`, got {shown}")
    if any(not rest.startswith(("0", "1")) for rest in pointer.split("~")[1:]):
        raise ValueError(
            f"config key `pointer` has an invalid escape (`~` must be followed by 0 or 1): {shown}"
        )
    return pointer


def find(document, pointer):
    """The value at an RFC 6901 pointer, or MISSING."""
    for token in pointer.split("/")[1:] if pointer else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict) and token in document:
            document = document[token]
        elif isinstance(document, list) and re.fullmatch(r"0|[1-9][0-9]*", token) and int(token) < len(document):
            document = document[int(token)]
        else:
            return MISSING
    return document


def json_eq(a, b):
    """JSON equality: 2 equals 2.0 but not "2" or true; objects whatever their order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b) if isinstance(a, float) or isinstance(b, float) else a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and json_eq(v, b[k]) for k, v in a.items())
    return type(a) is type(b) and a == b


def shown(value):
    """Compact JSON, cut to about MAX_SHOWN bytes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) <= MAX_SHOWN:
        return text.decode()
    end = MAX_SHOWN
    while end > 0 and text[end] & 0xC0 == 0x80:
        end -= 1
    return text[:end].decode() + "..."


def transform(event, config):
    pointer, values, negate = read_config(config)
    found = find(json.loads(event["payload"]), pointer)
    matched = found is not MISSING and any(json_eq(v, found) for v in values)
    if matched != negate:
        return {"body": event["payload"]}
    found = "missing" if found is MISSING else shown(found)
    if negate:
        return {"drop": f"value at {pointer} is {found}, one of the excluded values"}
    return {"drop": f"value at {pointer} is {found}, not one of the accepted values"}
