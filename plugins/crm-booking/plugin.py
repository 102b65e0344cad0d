"""crm-booking in Python: the same plugin as src/lib.rs, giving the same
bytes (see the README). Build it as the `app.py` of a project written by
`hookgate plugin new --lang python`.
"""

DEFAULT_STAGES = {"confirmed": "won", "cancelled": "lost"}


def read_config(config):
    if not isinstance(config, dict):
        raise ValueError("config must be a JSON object")
    stage_map, pipeline = dict(DEFAULT_STAGES), None
    for key, value in config.items():
        if key == "stage_map":
            if not isinstance(value, dict):
                raise ValueError("config key `stage_map` must be an object mapping statuses to stages")
            for status, stage in value.items():
                if not isinstance(stage, str):
                    raise ValueError(f"config key `stage_map` entry `{status}` must be a string")
                stage_map[status] = stage
        elif key == "pipeline":
            if value is not None and not isinstance(value, str):
                raise ValueError("config key `pipeline` must be a string")
            pipeline = value
        else:
            raise ValueError(f"unknown config key `{key}` (expected `stage_map`, `pipeline`)")
    return stage_map, pipeline


def get(value, key):
    """`value[key]` when `value` is an object that has it, else None."""
    return value.get(key) if isinstance(value, dict) else None


def text(value):
    """A string or a number as text, for the deal's title."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return None


def transform(event, config):
    stage_map, pipeline = read_config(config)
    kind = event["type"]
    if not kind.startswith("booking."):
        return {"drop": f"not a booking event: {kind}"}
    name = event["id"] or "without id"
    data = event["data"]
    if not isinstance(data, dict) or "booking" not in data:
        raise ValueError(f"event {name} ({kind}) has no `data.booking` object")
    booking = data["booking"]
    if not isinstance(booking, dict):
        raise ValueError(f"event {name} ({kind}): `data.booking` must be an object")
    customer, trip = get(booking, "customer"), get(booking, "trip")

    title = [text(get(trip, "name")), "booking", text(booking.get("id"))]
    title = " ".join(part for part in title if part is not None)
    status = booking.get("status")
    stage = stage_map.get(status, "open") if isinstance(status, str) else "open"

    deal = {
        "external_id": booking.get("id"),
        "title": title,
        "amount": booking.get("total"),
        "currency": booking.get("currency"),
        "stage": stage,
    }
    if get(trip, "start_date") is not None:
        deal["close_date"] = get(trip, "start_date")
    if pipeline is not None:
        deal["pipeline"] = pipeline
    crm = {
        "contact": {key: get(customer, key) for key in ("email", "name", "phone")},
        "deal": deal,
        "source": {"event_id": event["id"], "event_type": kind, "occurred_at": event["created_at"]},
    }
    return {"body": crm, "headers": {"X-CRM-Object": "deal"}}
