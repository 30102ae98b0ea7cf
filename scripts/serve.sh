#!/usr/bin/env bash
# Builds and starts `coffer serve` on the embedded store (data in ./coffer-data).
# On a fresh machine it first installs protoc (Debian protobuf-compiler), which the etcd
# client crate needs at build time. Extra arguments go to `coffer serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v protoc >/dev/null 2>&1; then
  echo "serve.sh: installing protobuf-compiler (needed to build the etcd client)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null
fi
exec cargo run --release -- serve "$@"
