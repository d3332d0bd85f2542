#!/usr/bin/env bash
# ThreadSanitizer over the unit and integration tests (stress suite
# included, at scale 1). Not run in CI (it rebuilds std with the sanitizer).
#
#   scripts/tsan.sh                 # all of --lib --tests
#   scripts/tsan.sh --test stress   # any cargo-test selection / filter
#
# Uses the nightly toolchain if it has rust-src; otherwise stable with
# RUSTC_BOOTSTRAP=1 (unstable flags on a stable compiler) after
# `rustup component add rust-src`.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/tsan"
export RUSTFLAGS="-Zsanitizer=thread ${RUSTFLAGS:-}"
export RUSTDOCFLAGS="-Zsanitizer=thread ${RUSTDOCFLAGS:-}"
# Report every race, and fail the run on the first one.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"
if rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  toolchain=(+nightly)
else
  rustup component add rust-src
  export RUSTC_BOOTSTRAP=1
  toolchain=()
fi
if [ $# -eq 0 ]; then
  set -- --lib --tests
fi
exec cargo "${toolchain[@]}" test -Zbuild-std --target "$target" "$@"
