#!/usr/bin/env bash
# Builds the crate's no_std + alloc core for a bare-metal target (no OS, no
# std): proof that nothing in it needs the standard library.
#
#   scripts/bare_metal.sh [extra cargo args]      (e.g. --features tracing)
#
# Uses the stable toolchain's prebuilt `core`/`alloc` for the target when
# rustup can install it; otherwise nightly rebuilds them from `rust-src`
# (`-Zbuild-std=core,alloc`).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${BARE_TARGET:-x86_64-unknown-none}"

if rustup target list --installed 2>/dev/null | grep -qx "$TARGET" ||
    rustup target add "$TARGET" >/dev/null 2>&1; then
    echo "bare_metal.sh: $TARGET with the stable toolchain"
    exec cargo build --lib --target "$TARGET" --no-default-features "$@"
fi

if rustup component add rust-src --toolchain nightly >/dev/null 2>&1; then
    echo "bare_metal.sh: $TARGET with nightly -Zbuild-std=core,alloc"
    exec cargo +nightly build -Zbuild-std=core,alloc --lib --target "$TARGET" \
        --no-default-features "$@"
fi

echo "bare_metal.sh: neither the $TARGET target nor nightly rust-src can be installed" >&2
exit 1
