#!/usr/bin/env bash
# Installs solana-test-validator 4.2.2 (crate agave-validator, built from crates.io) into
# a fixed root, so a machine that already has it skips the ~20-minute build.
#
#   root:   ${KYZLO_TOOLS:-$HOME/.cache/kyzlo}/validator-4.2.2
#   binary: <root>/bin/solana-test-validator   (printed on stdout, alone)
#
# The build needs Debian's clang and libclang-dev (installed here when missing). Its
# target dir is kept under ${KYZLO_TOOLS}, so an interrupted build resumes.
set -euo pipefail

tools="${KYZLO_TOOLS:-$HOME/.cache/kyzlo}"
root="$tools/validator-4.2.2"
bin="$root/bin/solana-test-validator"

if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi

missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "ok installed" || missing+=(libclang-dev)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "install-validator: installing ${missing[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2
fi

mkdir -p "$tools"
echo "install-validator: building solana-test-validator 4.2.2 (about 20 minutes on 2 cores)" >&2
cargo install agave-validator --version =4.2.2 --locked --bin solana-test-validator \
    --root "$root" --target-dir "$tools/validator-build" >&2

if [ ! -x "$bin" ]; then
    echo "install-validator: build finished but $bin is missing" >&2
    exit 1
fi
echo "$bin"
