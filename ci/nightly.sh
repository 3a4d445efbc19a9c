#!/usr/bin/env bash
# Sourced by the scripts that need nightly: installs it (minimal profile, with the components
# in NIGHTLY_COMPONENTS, default "miri rust-src") if missing.
# Sets NIGHTLY_OK=1 when a usable nightly is there. Where it cannot be had:
#   CI=true  -> prints an error and exits 1 (the calling script fails: a proof cannot skip in CI);
#   else     -> prints a notice and sets NIGHTLY_OK=0 (the caller skips, exit 0).
NIGHTLY_OK=0
NIGHTLY_COMPONENTS=${NIGHTLY_COMPONENTS-miri rust-src}

nightly_unavailable() {
  if [ "${CI:-}" = true ]; then
    echo "error: $1; CI=true, so this nightly check fails instead of skipping" >&2
    exit 1
  fi
  echo "notice: $1; nightly checks skipped (they fail instead under CI=true)"
}

nightly_ready() {
  rustup run nightly rustc --version >/dev/null 2>&1 || return 1
  local c installed
  installed=$(rustup component list --toolchain nightly --installed 2>/dev/null) || return 1
  for c in $NIGHTLY_COMPONENTS; do
    grep -q "^$c" <<<"$installed" || return 1
  done
}

if ! command -v rustup >/dev/null; then
  nightly_unavailable "rustup not found"
elif nightly_ready; then
  NIGHTLY_OK=1
else
  echo "installing nightly (minimal${NIGHTLY_COMPONENTS:+, with ${NIGHTLY_COMPONENTS// /, }})"
  components=()
  [ -z "$NIGHTLY_COMPONENTS" ] || components=(--component "${NIGHTLY_COMPONENTS// /,}")
  if timeout 900 rustup toolchain install nightly --profile minimal "${components[@]}" \
     && nightly_ready; then
    NIGHTLY_OK=1
  else
    nightly_unavailable "could not install nightly${NIGHTLY_COMPONENTS:+ with $NIGHTLY_COMPONENTS}"
  fi
fi
