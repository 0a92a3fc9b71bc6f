#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (Debian's `postgresql` package, installed with apt when missing):
# its own data directory, listening on 127.0.0.1 only, with a password user and a database for the tests.
#   scripts/postgres.sh start   # idempotent; prints RESPONSES_RS_POSTGRES=postgresql://user:pw@127.0.0.1:port/db
#                               # on its last line (everything else goes to stderr)
#   scripts/postgres.sh stop    # stops it and removes its directory
# Runs as root (the server then runs as the package's `postgres` user; no stdin needed) or as any user when
# PostgreSQL is already installed.
#   RESPONSES_RS_PG_DIR   where the cluster lives (default /tmp/responses-rs-postgres)
#   RESPONSES_RS_PG_PORT  its TCP port on 127.0.0.1 (default 55432)
# The role may create databases: the OGX PostgreSQL test makes a fresh one per run.
set -euo pipefail
cmd="${1:-start}"
dir="${RESPONSES_RS_PG_DIR:-/tmp/responses-rs-postgres}"
port="${RESPONSES_RS_PG_PORT:-55432}"
user=responses_rs
password=responses_rs
db=responses_rs

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
running() { [ -f "$dir/data/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case "$cmd" in
  start)
    if [ -z "$(bindir)" ]; then
      echo "postgres.sh: installing postgresql (apt)" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >&2
      apt-get install -y -q --no-install-recommends postgresql </dev/null >&2
    fi
    bin="$(bindir)"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      rm -rf "$dir"
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres: "$dir"
      # The socket directory is the cluster's own; local (socket) connections trust, TCP wants the password.
      as_owner "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >&2
    fi
    if ! running; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >&2
    fi
    psql=("$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
    if [ "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
      as_owner "${psql[@]}" -c "CREATE ROLE $user LOGIN CREATEDB PASSWORD '$password'" >&2
    fi
    if [ "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      as_owner "${psql[@]}" -c "CREATE DATABASE $db OWNER $user" >&2
    fi
    echo "RESPONSES_RS_POSTGRES=postgresql://$user:$password@127.0.0.1:$port/$db"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ] && [ -n "$(bindir)" ]; then
      as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: scripts/postgres.sh start|stop" >&2
    exit 2
    ;;
esac
