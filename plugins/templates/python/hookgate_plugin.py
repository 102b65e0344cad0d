"""The glue between hookgate's `transformer` world and `transform` in app.py.

componentize-py builds this module into the component (`./build.sh`): its
`WitWorld.transform` is the component's export. It reads the event and the
config from JSON, calls `app.transform(event, config)` with plain dicts, and
turns what that returns into the world's outcome:

- `{"body": ..., "headers"?: {...}, "content_type"?: "..."}`: deliver the
  body, a string exactly as it is, anything else as compact JSON;
- `{"drop": "reason"}`: do not deliver (the delivery log says `filtered`);
- an exception: a plugin failure (`plugin_failed`, with its message).

Edit app.py, not this file.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log as wit_log
from wit_world.imports import types

from app import transform


def to_json(value):
    """Compact JSON, characters kept as they are (as serde_json writes it)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads(text):
    """JSON as a JSON parser reads it: `NaN` and `Infinity` are refused."""
    return json.loads(text, parse_constant=reject_constant)


def read_config(text):
    text = text.strip()
    if not text:
        return {}
    try:
        return loads(text)
    except ValueError as e:
        raise ValueError(f"config is not valid JSON: {e}") from None


def read_event(event):
    try:
        payload = loads(event.payload)
    except ValueError as e:
        raise ValueError(f"payload is not valid JSON: {e}") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    return {
        "id": event.id,
        "type": event.event_type,
        "created_at": event.created_at,
        "endpoint_id": event.endpoint_id,
        "data": data,
        "headers": {h.name: h.value for h in event.headers},
        "payload": event.payload,
    }


def to_outcome(result):
    if not isinstance(result, dict):
        raise TypeError(
            "transform must return a dict: {\"body\": ...} or {\"drop\": \"reason\"}, "
            f"not {type(result).__name__}"
        )
    if "drop" in result:
        unknown = set(result) - {"drop"}
        if unknown:
            raise TypeError(f"a drop has only \"drop\", not {sorted(unknown)}")
        return types.Outcome_Drop(str(result["drop"]))
    unknown = set(result) - {"body", "headers", "content_type"}
    if unknown or "body" not in result:
        raise TypeError(
            "transform must return {\"body\", \"headers\"?, \"content_type\"?} "
            f"or {{\"drop\"}}, got keys {sorted(result)}"
        )
    body = result["body"]
    if not isinstance(body, str):
        body = to_json(body)
    headers = result.get("headers") or {}
    if not isinstance(headers, dict):
        raise TypeError("\"headers\" must be a dict of header names to values")
    content_type = result.get("content_type")
    return types.Outcome_Deliver(
        types.Delivery(
            body=body,
            headers=[types.Header(name=str(k), value=str(v)) for k, v in headers.items()],
            content_type=None if content_type is None else str(content_type),
        )
    )


def summary(event_id, outcome):
    if isinstance(outcome, types.Outcome_Deliver):
        return f"event {event_id}: deliver {len(outcome.value.body.encode())} bytes"
    return f"event {event_id}: dropped: {outcome.value}"


class WitWorld(wit_world.WitWorld):
    def transform(self, event, config):
        try:
            config = read_config(config)
            outcome = to_outcome(transform(read_event(event), config))
        except Exception as e:  # noqa: BLE001 - every failure is the plugin's
            message = str(e) or type(e).__name__
            wit_log.log(wit_log.Level.DEBUG, f"event {event.id}: error: {message}")
            raise Err(message)
        wit_log.log(wit_log.Level.DEBUG, summary(event.id, outcome))
        return outcome
