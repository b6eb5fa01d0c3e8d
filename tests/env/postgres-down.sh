#!/usr/bin/env bash
# Stops the private cluster postgres-up.sh started (a reused server is left alone).
set -euo pipefail
DIR=${PG_DIR:-/tmp/leadrouter-testenv/pg}
[[ -s $DIR/data/postmaster.pid ]] || exit 0
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
