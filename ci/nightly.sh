#!/usr/bin/env bash
# Sourced by the scripts that need nightly: installs it (with miri and rust-src) if missing.
# Sets NIGHTLY_OK=1 when a usable nightly is there, else prints a notice.
NIGHTLY_OK=0
if ! command -v rustup >/dev/null; then
  echo "notice: rustup not found; nightly checks skipped"
  return 0 2>/dev/null || exit 0
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1 \
   || ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^miri' \
   || ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  echo "installing nightly (minimal, with miri and rust-src)"
  if ! timeout 900 rustup toolchain install nightly --profile minimal --component miri,rust-src; then
    echo "notice: could not install nightly; nightly checks skipped"
    return 0 2>/dev/null || exit 0
  fi
fi
NIGHTLY_OK=1
