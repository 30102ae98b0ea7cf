#!/bin/sh
# One demo service: opens a new database connection every 100 ms with the DSN from its
# mounted Secret file (coffer run keeps it current), and reports every 50 connections.
# Run by run.sh through `coffer run`, which sets $COFFER_MOUNT_ROOT and $SERVICE.
d="${COFFER_MOUNT_ROOT:-}/etc/db"
ok=0
failed=0
while :; do
  if who=$(psql "$(cat "$d/uri")" -qAtc 'select current_user' 2>&1); then
    ok=$((ok + 1))
  else
    failed=$((failed + 1))
    echo "$SERVICE: connection FAILED: $who"
  fi
  if [ $(((ok + failed) % 50)) -eq 0 ]; then
    echo "$SERVICE: connected as $who; $ok connections, $failed failed"
  fi
  sleep 0.1
done
