"""A hookgate plugin: `transform` is called once per delivery.

`event` is a dict: {"id", "type", "created_at", "endpoint_id", "data",
"headers", "payload"}, where `data` is the envelope's data and `payload` the
body about to be sent, as text. `config` is the endpoint's JSON config for
this plugin (a dict; {} when none).

Return {"body": ..., "headers": {...}, "content_type": "..."} to deliver
(headers and content_type are optional; a body that is not a string is sent
as compact JSON), or {"drop": "reason"} to send nothing. Raising an
exception fails the delivery (`plugin_failed`, with the message).
"""


def transform(event, config):
    if not event["type"].startswith(config.get("prefix", "")):
        return {"drop": f"not a {config['prefix']} event: {event['type']}"}
    body = {"event": event["id"], "type": event["type"], "data": event["data"]}
    return {"body": body, "headers": {"X-Plugin": "__NAME__"}}
