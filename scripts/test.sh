#!/usr/bin/env bash
# Installs everything the tests need (idempotently) and runs every test, lint and check.
# Usage: scripts/test.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- system packages -------------------------------------------------------------------
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v git >/dev/null 2>&1 || need+=(git)
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
# PostgreSQL for coffer-rotation's tests: Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<v>/bin (off PATH); the harness looks there.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Python packages: the official Kubernetes client for the end-to-end client test.
if ! python3 -c 'import kubernetes' >/dev/null 2>&1; then
  echo "test.sh: installing the Python kubernetes client"
  python3 -m pip install --quiet --disable-pip-version-check 'kubernetes==37.0.2'
fi
if ! python3 -c 'import jsonschema' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'jsonschema>=4'
fi
# moto's server: the AWS Secrets Manager peer of coffer-sync's tests (tests/aws_moto.rs).
if ! command -v moto_server >/dev/null 2>&1; then
  echo "test.sh: installing moto's server"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
fi
# The official SARIF 2.1.0 schema, shipped in an npm package, for coffer-scan's SARIF test.
deps="$PWD/target/test-deps"
if [ ! -f "$deps/sarif/package/lib/schemas/sarif-2.1.0-rtm.5.json" ]; then
  mkdir -p "$deps/sarif"
  (cd "$deps/sarif" && npm pack --silent '@microsoft/jest-sarif@1.0.0-beta.0' >/dev/null && tar xzf microsoft-jest-sarif-*.tgz)
fi
export SARIF_SCHEMA="$deps/sarif/package/lib/schemas/sarif-2.1.0-rtm.5.json"
# kubectl 1.27 ... 1.33 ship beside the Google Cloud SDK's kubectl on this machine kind.
if [ -d /usr/lib/google-cloud-sdk/bin ]; then
  export PATH="$PATH:/usr/lib/google-cloud-sdk/bin"
fi
for v in 1.27 1.32 1.33; do
  command -v "kubectl.$v" >/dev/null 2>&1 || { echo "test.sh: kubectl.$v is missing; the end-to-end tests need it" >&2; exit 1; }
done

# Debian's etcd-server package starts a system etcd on 2379; tests use their own members on
# free ports, so it is left alone.

# Keep the build small: a full debug build of the workspace and its test binaries with full
# debug info and incremental caches passes 50 GB; line tables keep backtraces readable.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
export CARGO_PROFILE_TEST_DEBUG=line-tables-only

# --- checks ------------------------------------------------------------------------------
echo "test.sh: cargo fmt --check"
cargo fmt --all -- --check
echo "test.sh: cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# `--all-targets` above already type-checks the benchmarks (scripts/bench.sh builds and runs
# them in release); a release build here would add a quarter of an hour.

# --- tests -------------------------------------------------------------------------------
echo "test.sh: cargo test"
cargo test --workspace --no-fail-fast -- --include-ignored

# --- dogfood: the repository itself holds no hardcoded secret ------------------------------
echo "test.sh: coffer scan ."
cargo run --quiet -- scan .
