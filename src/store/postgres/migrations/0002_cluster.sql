-- Several gateways on one database (docs/cluster.md).
--
-- A due queue entry is handed to one gateway at a time: `due` claims it for
-- `leased_by` until `leased_until`, the claiming gateway renews the lease
-- while it holds the entry, and when the lease runs out (the gateway died)
-- the entry is due for any gateway again. An entry no gateway holds has
-- both columns NULL.
ALTER TABLE queue
    ADD COLUMN leased_by text COLLATE "C",
    ADD COLUMN leased_until timestamptz;
CREATE INDEX queue_leased ON queue (leased_by) WHERE leased_by IS NOT NULL;

-- The gateways alive: each writes `seen_at` every second. The live ones,
-- in id order, share out each endpoint's in-flight and rate limits.
CREATE TABLE gateways (
    id text COLLATE "C" PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now()
);
