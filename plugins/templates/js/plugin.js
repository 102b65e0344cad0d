// The __NAME__ hookgate plugin: `transform` runs once per delivery.
//
// event:  { id, type, created_at, endpoint_id, data, headers, payload }
//         (data: the envelope's data; headers: { name: value } added by
//         earlier plugins; payload: the body about to be sent, as text)
// config: the endpoint's JSON config for this plugin ({} when none)
//
// Return { body, headers?, content_type? } to deliver (a body that is not a
// string is sent as JSON), or { drop: "reason" } to send nothing. A throw
// fails the delivery (plugin_failed, with its message).

export function transform(event, config) {
  const prefix = config.prefix ?? "";
  if (!event.type.startsWith(prefix)) {
    return { drop: `not a ${prefix} event: ${event.type}` };
  }
  const body = { event: event.id, type: event.type, data: event.data };
  return { body, headers: { "X-Plugin": "__NAME__" } };
}
