#!/usr/bin/env bash
# Two hookgate gateways on one PostgreSQL database (docs/cluster.md).
#
#   bash examples/cluster.sh
#
# Starts a throwaway PostgreSQL server (tests/postgres.sh: Debian's
# postgresql, installed when missing, in a temp dir on a loopback port),
# two gateways on one database of it, and the example receiver; then
# creates a tenant through gateway A and an endpoint through gateway B,
# publishes one event through each, and waits until the receiver has both.
# Then it stops A and publishes through B again: B delivers alone. Everything
# it started is stopped when it ends.
#
# It builds the release binaries unless HOOKGATE_BIN and RECEIVER_BIN name
# them (the tests pass theirs). With HOOKGATE_TEST_DATABASE_URL set it uses
# that server instead of starting one, in a new database of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${HOOKGATE_BIN:-}" ] || [ -z "${RECEIVER_BIN:-}" ]; then
  cargo build --release --quiet --bin hookgate --example receiver
  HOOKGATE_BIN=target/release/hookgate
  RECEIVER_BIN=target/release/examples/receiver
fi

source tests/postgres.sh
hookgate_postgres
work=$(mktemp -d "${TMPDIR:-/tmp}/hookgate-cluster.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -X -q -d "$HOOKGATE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  rm -rf "$work"
  hookgate_postgres_stop
}
trap cleanup EXIT

# One database for the two gateways.
database="hookgate_example_$$"
psql -X -q -v ON_ERROR_STOP=1 -d "$HOOKGATE_TEST_DATABASE_URL" -c "CREATE DATABASE $database"
export HOOKGATE_DATABASE_URL="${HOOKGATE_TEST_DATABASE_URL%/*}/$database"
export HOOKGATE_ADMIN_TOKEN=example-admin-token-0123456789
export HOOKGATE_ALLOW_HTTP=true HOOKGATE_ALLOW_TARGETS=127.0.0.0/8

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# Starts a gateway named $1 on a free port; sets `url` to its URL and
# `pid` to its process.
start_gateway() {
  local name=$1 port
  port=$(free_port)
  HOOKGATE_LISTEN="127.0.0.1:$port" HOOKGATE_DATA_DIR="$work/$name" \
    "$HOOKGATE_BIN" serve >"$work/$name.out" 2>"$work/$name.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    if grep -q "hookgate listening on" "$work/$name.out" 2>/dev/null; then
      url="http://127.0.0.1:$port"
      return
    fi
    sleep 0.1
  done
  echo "gateway $name did not start:" >&2
  cat "$work/$name.log" >&2
  return 1
}

# curl with the answer's JSON on stdout; fails on an error status.
call() {
  curl -sS --fail-with-body -H 'Content-Type: application/json' "$@"
}

start_gateway a
a=$url pid_a=$pid
start_gateway b
b=$url
echo "gateway A: $a"
echo "gateway B: $b"

tenant=$(call -X POST "$a/v1/tenants" -H "Authorization: Bearer $HOOKGATE_ADMIN_TOKEN" \
  -d '{"name": "Acme Travel"}' | jq -r .data.tenant.id)
key=$(call -X POST "$a/v1/tenants/$tenant/keys" -H "Authorization: Bearer $HOOKGATE_ADMIN_TOKEN" \
  -d '{"name": "backend", "scopes": ["publish", "endpoints"]}' | jq -r .data.key.token)
echo "tenant $tenant made through A"

receiver_port=$(free_port)
call -X POST "$b/v1/event-types" -H "Authorization: Bearer $key" \
  -d '{"name": "booking.created"}' >/dev/null
secret=$(call -X POST "$b/v1/webhooks" -H "Authorization: Bearer $key" \
  -d "{\"url\": \"http://127.0.0.1:$receiver_port/webhooks\", \"events\": [\"booking.created\"]}" \
  | jq -r .data.webhook.secret)
echo "endpoint made through B"

WEBHOOK_SECRET=$secret "$RECEIVER_BIN" "127.0.0.1:$receiver_port" >"$work/receiver.out" &
pids+=($!)
for _ in $(seq 100); do
  grep -q "receiver listening" "$work/receiver.out" 2>/dev/null && break
  sleep 0.1
done

publish() {
  call -X POST "$1/v1/events" -H "Authorization: Bearer $key" \
    -d "{\"type\": \"booking.created\", \"id\": \"$2\", \"data\": {\"booking\": {\"id\": \"$2\"}}}" >/dev/null
  echo "published $2 through $1"
}

# Waits until the receiver printed $1 deliveries.
received() {
  for _ in $(seq 600); do
    if [ "$(grep -c '"booking.created"' "$work/receiver.out")" -ge "$1" ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "the receiver did not get $1 deliveries; it printed:" >&2
  cat "$work/receiver.out" >&2
  return 1
}

publish "$a" bk_1
publish "$b" bk_2
received 2

# A stops (SIGTERM hands back what it holds); B goes on alone.
kill -TERM "$pid_a"
wait "$pid_a" || true
publish "$b" bk_3
received 3
grep '"booking.created"' "$work/receiver.out"
echo "both gateways served one tenant; B delivered alone after A stopped"
