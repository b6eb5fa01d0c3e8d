#!/usr/bin/env bash
# Stops the Dovecot that dovecot-up.sh started. Idempotent.
set -euo pipefail
DIR=${DOVECOT_DIR:-/tmp/leadrouter-testenv/dovecot}
alive() { [[ -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1) != Z ]]; }
pidfile=$DIR/run/master.pid
if [[ -s $pidfile ]] && pid=$(cat "$pidfile") && alive "$pid"; then
  kill -TERM "$pid"
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -KILL "$pid"
fi
rm -f "$pidfile"
