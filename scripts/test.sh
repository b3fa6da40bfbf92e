#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a machine with nothing but Rust.
#
# 1. Installs solana-test-validator (for the Solana adapter's suite against a real local
#    validator) when it is missing: a ~20-minute build the first time, skipped after.
# 2. Installs Debian's chromium (for the page tests in a real headless browser) when no
#    Chromium is on the PATH and KYZLO_CHROMIUM names none: about a minute, once.
# 3. Installs Debian's postgresql (for the PostgreSQL journal's tests, each against a
#    throwaway cluster the test starts itself) when no initdb/pg_ctl is found in
#    KYZLO_PG_BIN, on the PATH or under /usr/lib/postgresql: about a minute, once.
# 4. Builds every test.
# 5. Runs them inside a private network namespace when the machine allows one (root, or
#    unprivileged user namespaces): only loopback exists there, so no test can reach, or
#    be reached from, anything but this machine (the validator's RPC port listens on every
#    interface whatever its options say).
set -euo pipefail
cd "$(dirname "$0")/.."

validator=$(scripts/install-validator.sh)
export KYZLO_VALIDATOR_BIN="$validator"

if [ -z "${KYZLO_CHROMIUM:-}" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  echo "installing chromium (Debian) for the browser tests" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi

have_postgres() {
  local dir
  for dir in ${KYZLO_PG_BIN:-} $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)") /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && return 0
  done
  return 1
}
if ! have_postgres; then
  echo "installing postgresql (Debian) for the PostgreSQL journal's tests" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
fi

cargo test --workspace --locked --no-run
# The binary the end-to-end tests in tests/ run (they build it on demand; built here first
# so that the build's output stays out of the tests').
cargo build -p kyzlo-app --bin kyzlo --locked

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
if command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  unshare -n sh -c 'ip link set lo up && CARGO_NET_OFFLINE=true exec cargo test --workspace --locked --offline' 2>&1 \
    | tee "$log" || status=$?
else
  echo "note: cannot create a network namespace here; the validator suite isolates itself" >&2
  cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
fi
# One closing line with the totals of every test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
