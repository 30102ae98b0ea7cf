#!/bin/sh
# The guide's step 10: three services, each with its own PostgreSQL role pair and Secret, a
# ServiceAccount that may read only its own Secret, and alternating-user rotation every 5 s.
#
#   ./run.sh                # runs until Ctrl-C
#   DURATION=60 ./run.sh    # stops by itself after 60 s
#
# Needs: PostgreSQL's server binaries (initdb, pg_ctl, psql; Debian: /usr/lib/postgresql/*/bin),
# kubectl, and coffer (COFFER=path, else the newer of target/{release,debug}/coffer, else PATH).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
services="orders payments inventory"

# The newest of the workspace's builds, else coffer on PATH.
COFFER=${COFFER:-$(ls -t "$root/target/release/coffer" "$root/target/debug/coffer" 2>/dev/null | head -1)}
COFFER=${COFFER:-coffer}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pgbin" ] && PATH="$pgbin:$PATH"
for tool in initdb pg_ctl psql kubectl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found; install it (PostgreSQL server, kubectl)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/coffer-microservices.XXXXXX)
export KUBECACHEDIR="$work/kube-cache" # a fresh discovery cache for this server
pids=""
cleanup() {
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg pg_ctl -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# PostgreSQL in the temporary directory, on a free port (as the postgres user when root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$work"
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
as_pg initdb -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
as_pg pg_ctl -D "$work/pg" -l "$work/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $work" start >/dev/null
sql() { as_pg psql -h "$work" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
sql -c "CREATE DATABASE shop"
sql -c "CREATE ROLE coffer_admin LOGIN CREATEROLE PASSWORD '$admin_password'"
for s in $services; do
  # The group role owns the grants; the rotator creates ${s}_b with the same memberships.
  sql -d shop -c "CREATE ROLE $s NOLOGIN; CREATE TABLE ${s}_items (id int);
    GRANT SELECT ON ${s}_items TO $s; GRANT CONNECT ON DATABASE shop TO $s;
    CREATE ROLE ${s}_a LOGIN PASSWORD 'initial-$admin_password' IN ROLE $s;
    GRANT $s TO coffer_admin WITH ADMIN OPTION"
done
echo "PostgreSQL on 127.0.0.1:$PGPORT (log: $work/pg.log)"

# coffer serve, with the built-in rotation controller.
mkfifo "$work/serve.out"
"$COFFER" serve --data-dir "$work/coffer" --secure-port 0 >"$work/serve.out" 2>"$work/serve.log" &
pids="$pids $!"
read -r line <"$work/serve.out"
export KUBECONFIG="${line#export KUBECONFIG=}"
cat "$work/serve.out" >/dev/null &
echo "coffer serve is up: export KUBECONFIG=$KUBECONFIG (log: $work/serve.log)"

kubectl create namespace shop >/dev/null
kubectl -n shop create secret generic pg-admin \
  --from-literal=username=coffer_admin --from-literal=password="$admin_password" >/dev/null
for s in $services; do
  kubectl -n shop create secret generic "$s-db" \
    --from-literal=username="${s}_a" --from-literal=password="initial-$admin_password" >/dev/null
done
kubectl apply -f "$here/manifests/rbac.yaml" >/dev/null
sed "s/@PGPORT@/$PGPORT/" "$here/manifests/rotations.yaml" | kubectl apply -f - >/dev/null
echo "applied: namespace shop, 3 ServiceAccounts with Roles, 3 SecretRotations (every 5 s)"

# The first rotation (due at once) gives each Secret its `uri`; wait for it.
for s in $services; do
  until [ "$(kubectl -n shop get secretrotation "$s-db" -o jsonpath='{.status.currentVersion}')" -ge 1 ] 2>/dev/null; do
    sleep 0.2
  done
done

# Each service runs under its own ServiceAccount token: it can read only its own Secret.
for s in $services; do
  kc="$work/$s.kubeconfig"
  cp "$KUBECONFIG" "$kc"
  KUBECONFIG="$kc" kubectl config set-credentials admin --token="$(kubectl -n shop create token "$s" --duration=24h)" >/dev/null
  "$COFFER" run --kubeconfig "$kc" -f "$here/manifests/$s.yaml" --mount-root "$work/mounts-$s" \
    -- sh "$here/service.sh" 2>"$work/$s.log" &
  pids="$pids $!"
done
echo "services started; watch them below, and in another shell:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  coffer rotate status                      # versions climbing every ~5 s"
echo "  kubectl --token \$(kubectl -n shop create token orders) -n shop get secret payments-db   # Forbidden"

if [ -n "${DURATION:-}" ]; then
  sleep "$DURATION"
  "$COFFER" rotate status
else
  wait
fi
