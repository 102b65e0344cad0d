// crm-booking in JavaScript: the same plugin as src/lib.rs, giving the same
// bytes (see the README; JavaScript writes a number like 12.0 as 12).

const DEFAULT_STAGES = { confirmed: "won", cancelled: "lost" };

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
const get = (value, key) => (isObject(value) && Object.hasOwn(value, key) ? value[key] : null);

function readConfig(config) {
  if (!isObject(config)) throw new Error("config must be a JSON object");
  const stageMap = new Map(Object.entries(DEFAULT_STAGES));
  let pipeline = null;
  for (const [key, value] of Object.entries(config)) {
    if (key === "stage_map") {
      if (!isObject(value)) {
        throw new Error("config key `stage_map` must be an object mapping statuses to stages");
      }
      for (const [status, stage] of Object.entries(value)) {
        if (typeof stage !== "string") {
          throw new Error(`config key \`stage_map\` entry \`${status}\` must be a string`);
        }
        stageMap.set(status, stage);
      }
    } else if (key === "pipeline") {
      if (value !== null && typeof value !== "string") {
        throw new Error("config key `pipeline` must be a string");
      }
      pipeline = value;
    } else {
      throw new Error(`unknown config key \`${key}\` (expected \`stage_map\`, \`pipeline\`)`);
    }
  }
  return { stageMap, pipeline };
}

// A string or a number as text, for the deal's title.
const text = (v) => (typeof v === "string" ? v : typeof v === "number" ? String(v) : null);

export function transform(event, config) {
  const { stageMap, pipeline } = readConfig(config);
  const kind = event.type;
  if (!kind.startsWith("booking.")) return { drop: `not a booking event: ${kind}` };
  const name = event.id || "without id";
  if (!isObject(event.data) || !Object.hasOwn(event.data, "booking")) {
    throw new Error(`event ${name} (${kind}) has no \`data.booking\` object`);
  }
  const booking = event.data.booking;
  if (!isObject(booking)) throw new Error(`event ${name} (${kind}): \`data.booking\` must be an object`);
  const [customer, trip] = [get(booking, "customer"), get(booking, "trip")];

  const title = [text(get(trip, "name")), "booking", text(get(booking, "id"))]
    .filter((part) => part !== null)
    .join(" ");
  const status = get(booking, "status");
  const stage = typeof status === "string" && stageMap.has(status) ? stageMap.get(status) : "open";

  const deal = {
    external_id: get(booking, "id"),
    title,
    amount: get(booking, "total"),
    currency: get(booking, "currency"),
    stage,
  };
  if (get(trip, "start_date") !== null) deal.close_date = get(trip, "start_date");
  if (pipeline !== null) deal.pipeline = pipeline;
  const body = {
    contact: { email: get(customer, "email"), name: get(customer, "name"), phone: get(customer, "phone") },
    deal,
    source: { event_id: event.id, event_type: kind, occurred_at: event.created_at },
  };
  return { body, headers: { "X-CRM-Object": "deal" } };
}
