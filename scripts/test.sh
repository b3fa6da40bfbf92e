#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a machine with nothing but Rust.
#
# Tests run inside a private network namespace when the machine allows it (root, or
# unprivileged user namespaces): only loopback exists there, so no test can reach, or be
# reached from, anything but this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked --no-run

if command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec cargo test --workspace --locked --offline'
fi
echo "note: cannot create a network namespace here; running tests on the host network" >&2
exec cargo test --workspace --locked
