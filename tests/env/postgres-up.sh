#!/usr/bin/env bash
# Brings up PostgreSQL for the test suite on 127.0.0.1:${PGPORT:-5432} without systemd:
#  - a server already there that trusts user `postgres` is reused;
#  - otherwise a private throwaway cluster is started in $PG_DIR (Debian's postgresql is
#    installed first when no server binaries exist).
# Prints KEY=VALUE lines; LEADROUTER_TEST_POSTGRES is the admin URL the tests create their
# databases with. Idempotent. Stop a private cluster with postgres-down.sh.
set -euo pipefail
DIR=${PG_DIR:-/tmp/leadrouter-testenv/pg}
PORT=${PGPORT:-5432}
export PGCONNECT_TIMEOUT=5
pidfile=$DIR/data/postmaster.pid

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; }
trusted() { psql -X -w -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }
# `kill -0` succeeds on zombies: read the process state instead.
alive() { [[ -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1) != Z ]]; }
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [[ -s $pidfile ]] && alive "$(head -1 "$pidfile")"; then
  mode=private
elif port_open; then
  command -v psql >/dev/null || apt_install postgresql-client
  trusted || { echo "127.0.0.1:$PORT is taken by a server that does not trust 'postgres'; set PGPORT" >&2; exit 1; }
  mode=reuse
else
  mode=private
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
  BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  if [[ ! -s $DIR/data/PG_VERSION ]]; then
    rm -rf "$DIR/data"
    install -d -m 755 "$DIR"
    install -d -o postgres -g postgres -m 700 "$DIR/data"
    # initdb refuses root; the data is throwaway, so no fsync.
    runuser -u postgres -- "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=trust \
      -E UTF8 --locale=C.UTF-8 --no-sync >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
  fi
  # Our own socket dir: /var/run/postgresql may not exist without systemd.
  install -d -o postgres -g postgres -m 755 "$DIR/sock"
  touch "$DIR/postgres.log"; chown postgres:postgres "$DIR/postgres.log"
  runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$DIR/sock -c fsync=off -c synchronous_commit=off -c max_connections=300" \
    start >/dev/null || { tail -n 30 "$DIR/postgres.log" >&2; exit 1; }
fi

echo "PG_MODE=$mode"
echo "LEADROUTER_TEST_POSTGRES=postgres://postgres@127.0.0.1:$PORT/postgres"
