-- The first schema. Each record is a row: its key, the columns queries
-- filter, order or refer by, and `body`, the record's serde JSON as the
-- model types write it (the one definition of a record). Text keys sort
-- byte by byte ("C"), as the embedded store's keys do: ids are ULIDs, so
-- in creation order.

CREATE TABLE meta (
    key text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE tenants (
    id text COLLATE "C" PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE api_keys (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants,
    id text COLLATE "C" NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    body bytea NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE event_types (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants,
    name text COLLATE "C" NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- `events` and `plugin_ids` are what the endpoint refers to: the names it
-- subscribes to and the plugins of its chain.
CREATE TABLE endpoints (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants,
    id text COLLATE "C" NOT NULL,
    events text[] COLLATE "C" NOT NULL,
    plugin_ids text[] COLLATE "C" NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Component bytes by content, shared by every plugin record with that
-- SHA-256; compiled artifacts go with them.
CREATE TABLE plugin_blobs (
    sha256 text COLLATE "C" PRIMARY KEY,
    wasm bytea NOT NULL
);

CREATE TABLE plugin_artifacts (
    sha256 text COLLATE "C" NOT NULL REFERENCES plugin_blobs ON DELETE CASCADE,
    engine text COLLATE "C" NOT NULL,
    artifact bytea NOT NULL,
    PRIMARY KEY (sha256, engine)
);

CREATE TABLE plugins (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants,
    id text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL REFERENCES plugin_blobs,
    body bytea NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX plugins_by_content ON plugins (sha256);

-- The hot tables (events, deliveries, queue) carry no foreign keys: a check
-- per row would lock the tenant's or endpoint's row on every publish.
CREATE TABLE events (
    tenant_id text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    created_at timestamptz NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_by_age ON events (created_at);

-- A producer's idempotency key names the event it first created, and goes
-- with it.
CREATE TABLE idempotency_keys (
    tenant_id text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, key),
    FOREIGN KEY (tenant_id, event_id) REFERENCES events ON DELETE CASCADE
);
CREATE INDEX idempotency_keys_by_event ON idempotency_keys (tenant_id, event_id);

-- An endpoint's log lists by the primary key, newest first. A delivery in
-- its endpoint's FIFO line has a `line_position`: the line's head has the
-- lowest, and is the only one queued.
CREATE TABLE deliveries (
    tenant_id text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    status text NOT NULL,
    test boolean NOT NULL,
    created_at timestamptz NOT NULL,
    next_retry timestamptz,
    line_position bigint,
    body bytea NOT NULL,
    PRIMARY KEY (tenant_id, endpoint_id, id)
);
CREATE INDEX deliveries_by_event ON deliveries (tenant_id, event_id);
CREATE INDEX deliveries_by_age ON deliveries (created_at);
CREATE UNIQUE INDEX deliveries_in_line ON deliveries (tenant_id, endpoint_id, line_position)
    WHERE line_position IS NOT NULL;

-- One entry per delivery with a `next_retry`, keyed by 8 bytes of due time
-- (ms, big-endian) and the delivery's 16-byte ULID: bytea compares as
-- bytes, so the front of the key order is the work due first.
CREATE TABLE queue (
    key bytea PRIMARY KEY,
    tenant_id text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    delivery_id text COLLATE "C" NOT NULL,
    fifo boolean NOT NULL
);
CREATE INDEX queue_by_endpoint ON queue (tenant_id, endpoint_id);
