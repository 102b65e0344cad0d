# A throwaway PostgreSQL server for the tests of the PostgreSQL store, to
# be sourced (by tests/run): `hookgate_postgres` does nothing when
# HOOKGATE_TEST_DATABASE_URL is set already; otherwise it installs Debian's
# postgresql when initdb is missing (through sudo when not root), makes a
# cluster in a temp dir (owned by the postgres user when root, by the
# current user otherwise), starts it on a free loopback port with its
# socket in that dir, waits until it accepts connections, and exports
# HOOKGATE_TEST_DATABASE_URL. A trap on EXIT stops the server and removes
# the dir, so the script that sources this must end as a shell does (not
# `exec` into its last command), and sets no EXIT trap of its own after.

# Where initdb, pg_ctl and pg_isready are: PATH, or Debian's directory.
hookgate_postgres_bin() {
  local initdb
  if initdb=$(command -v initdb); then
    dirname "$(readlink -f "$initdb")"
    return 0
  fi
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

hookgate_postgres() {
  if [ -n "${HOOKGATE_TEST_DATABASE_URL:-}" ]; then
    return 0
  fi
  local sudo="" as=()
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root.
    as=(runuser -u postgres --)
  else
    sudo="sudo"
  fi
  local bin
  if ! bin=$(hookgate_postgres_bin); then
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends postgresql
    bin=$(hookgate_postgres_bin)
  fi

  HOOKGATE_POSTGRES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hookgate-pg.XXXXXX")
  HOOKGATE_POSTGRES_BIN=$bin
  HOOKGATE_POSTGRES_AS=("${as[@]}")
  trap hookgate_postgres_stop EXIT
  if [ ${#as[@]} -gt 0 ]; then
    chown postgres: "$HOOKGATE_POSTGRES_DIR"
  fi
  local data="$HOOKGATE_POSTGRES_DIR/data"
  "${as[@]}" "$bin/initdb" -A trust -U postgres -E UTF8 -D "$data" >"$HOOKGATE_POSTGRES_DIR/initdb.log"

  # A port nothing listens on; another process may take it before the
  # server does, so a failed start tries the next.
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 40000))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      continue
    fi
    if "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$HOOKGATE_POSTGRES_DIR/server.log" -w -t 60 \
      -o "-p $port -k $HOOKGATE_POSTGRES_DIR -c listen_addresses=127.0.0.1" \
      start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ]; then
      echo "PostgreSQL did not start; its log:" >&2
      cat "$HOOKGATE_POSTGRES_DIR/server.log" >&2
      return 1
    fi
  done
  local waited=0
  until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; do
    waited=$((waited + 1))
    if [ "$waited" -ge 60 ]; then
      echo "PostgreSQL does not accept connections on port $port" >&2
      return 1
    fi
    sleep 1
  done
  export HOOKGATE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# Stops the server hookgate_postgres started and removes its dir.
hookgate_postgres_stop() {
  if [ -z "${HOOKGATE_POSTGRES_DIR:-}" ]; then
    return 0
  fi
  if [ -f "$HOOKGATE_POSTGRES_DIR/data/postmaster.pid" ]; then
    "${HOOKGATE_POSTGRES_AS[@]}" "$HOOKGATE_POSTGRES_BIN/pg_ctl" -D "$HOOKGATE_POSTGRES_DIR/data" \
      -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$HOOKGATE_POSTGRES_DIR"
  unset HOOKGATE_POSTGRES_DIR
}
