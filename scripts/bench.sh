#!/usr/bin/env bash
# Runs Coffer's benchmarks in release mode. Usage: scripts/bench.sh [storage|api|scan]
# Installs etcd-server if missing (the storage benchmark compares against a local etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
which=${1:-storage}
case "$which" in
  storage) cargo bench -p coffer-storage --bench storage ;;
  api) cargo bench -p coffer-server --bench api ;;
  scan)
    cargo build --release -p coffer
    if [ ! -x target/bench-venv/bin/trufflehog3 ]; then
      python3 -m venv target/bench-venv
      target/bench-venv/bin/pip install --quiet 'detect-secrets==1.5.0' 'trufflehog3==3.0.10'
    fi
    python3 scripts/bench_scan.py ;;
  *) echo "bench.sh: unknown benchmark '$which' (known: storage, api, scan)" >&2; exit 2 ;;
esac
