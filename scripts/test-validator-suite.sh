#!/usr/bin/env bash
# Runs the Solana adapter's suite against a real solana-test-validator on loopback.
#
#   scripts/test-validator-suite.sh [NAME_FILTER...]
#
# Installs the validator first when missing (scripts/install-validator.sh), unless
# KYZLO_VALIDATOR_BIN names one. The test binary then builds here (the registry is
# reachable) and runs inside a private network namespace: it re-executes itself under
# `unshare -n` with only `lo` up, because the validator's RPC port listens on every
# interface whatever --bind-address says, and it refuses to start a validator when any
# other interface is visible. One validator serves the whole run and is killed, with its
# ledger removed, when the run ends.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${KYZLO_VALIDATOR_BIN:-}" ]; then
    KYZLO_VALIDATOR_BIN="$("$here/install-validator.sh")"
    export KYZLO_VALIDATOR_BIN
fi

cd "$here/.."
exec cargo test -p kyzlo-adapters-solana --test validator -- "$@"
