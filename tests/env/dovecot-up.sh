#!/usr/bin/env bash
# A throwaway Dovecot IMAP server on 127.0.0.1 for the email tests: plain IMAP (+STARTTLS) on
# $IMAP_PORT, implicit TLS on $IMAPS_PORT, users leads@example.test and other@example.test
# (password "password"). Nothing under /etc/dovecot is read or changed; everything lives in
# $DOVECOT_DIR. Installs Debian's dovecot-imapd when missing. Idempotent; prints KEY=VALUE.
# Stop with dovecot-down.sh.
set -euo pipefail
DIR=${DOVECOT_DIR:-/tmp/leadrouter-testenv/dovecot}   # short: unix socket paths are limited
IMAP_PORT=${IMAP_PORT:-10143}
IMAPS_PORT=${IMAPS_PORT:-10993}
USERS=${DOVECOT_USERS:-"leads@example.test:password other@example.test:password"}
MAIL_OWNER=${DOVECOT_MAIL_OWNER:-nobody}              # Maildirs cannot belong to uid 0

pidfile=$DIR/run/master.pid
# `kill -0` succeeds on zombies: read the process state instead.
alive() { [[ -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1) != Z ]]; }
port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

if ! { [[ -s $pidfile ]] && alive "$(cat "$pidfile")"; }; then
  if ! command -v dovecot >/dev/null || [[ ! -x /usr/lib/dovecot/imap ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends dovecot-imapd openssl >/dev/null
  fi
  getent passwd dovecot >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin dovecot
  getent passwd dovenull >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin dovenull

  # Dovecot's unprivileged processes must be able to walk down to $DIR.
  d=$(dirname "$(realpath -m "$DIR")")
  while [[ $d != / ]]; do
    if [[ -d $d ]] && [[ $(stat -c %A "$d") != ?????????[xt] ]]; then
      echo "dovecot-up: $d is not world-traversable; chmod o+x it or choose another DOVECOT_DIR" >&2
      exit 1
    fi
    d=$(dirname "$d")
  done
  uid=$(id -u "$MAIL_OWNER"); gid=$(id -g "$MAIL_OWNER")
  rm -rf "$DIR/run"
  mkdir -p "$DIR"/{run,state,log,ssl,mail}
  chmod 755 "$(dirname "$DIR")" "$DIR" "$DIR/mail"
  chown "$uid:$gid" "$DIR/mail"

  if [[ ! -s $DIR/ssl/cert.pem ]]; then
    # CA:FALSE with SANs: rustls refuses a CA certificate used as the server's own.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$DIR/ssl/key.pem" -out "$DIR/ssl/cert.pem" -days 3650 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
      -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
    chmod 600 "$DIR/ssl/key.pem"
  fi

  : > "$DIR/users"
  for pair in $USERS; do
    echo "${pair%%:*}:{PLAIN}${pair#*:}:$uid:$gid::$DIR/mail/${pair%%:*}::" >> "$DIR/users"
  done
  chgrp dovecot "$DIR/users"; chmod 640 "$DIR/users"   # the auth process runs as dovecot

  cat > "$DIR/dovecot.conf" <<CONF
instance_name = leadrouter-test
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/log/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0 secs
ssl = yes
ssl_cert = <$DIR/ssl/cert.pem
ssl_key = <$DIR/ssl/key.pem
ssl_min_protocol = TLSv1.2
mail_location = maildir:~/Maildir
mail_fsync = never
mailbox_idle_check_interval = 1 secs
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $DIR/users
}
protocol imap {
  mail_max_userip_connections = 200
}
# No growing delay for every login after a failed one (the tests fail logins on purpose).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
CONF
  doveconf -c "$DIR/dovecot.conf" -n >/dev/null
  for _ in $(seq 1 50); do port_open "$IMAP_PORT" || port_open "$IMAPS_PORT" || break; sleep 0.1; done
  # Dovecot keeps its caller's stderr open: without the redirect CI's pipe never closes.
  dovecot -c "$DIR/dovecot.conf" </dev/null >/dev/null 2>>"$DIR/log/dovecot.stderr" || {
    echo "dovecot failed to start:" >&2; cat "$DIR/log/dovecot.stderr" >&2; exit 1; }
  for _ in $(seq 1 100); do port_open "$IMAP_PORT" && break; sleep 0.1; done
  port_open "$IMAP_PORT" || { echo "dovecot did not come up:" >&2; tail -n 30 "$DIR/log/dovecot.log" >&2; exit 1; }
fi

echo "LEADROUTER_TEST_IMAP_PORT=$IMAP_PORT"
echo "LEADROUTER_TEST_IMAPS_PORT=$IMAPS_PORT"
echo "LEADROUTER_TEST_IMAP_CA=$DIR/ssl/cert.pem"
echo "LEADROUTER_TEST_DOVECOT_CONF=$DIR/dovecot.conf"
