#!/usr/bin/env bash
# The example app in a real browser: headless Chromium driven over WebDriver (tests/browser.rs:
# open the page, bump the counter, log in, log out; checks the cookie at each step).
# Installs Debian's `chromium` and `chromium-driver` where chromedriver is missing (apt-get,
# as root or through sudo), then runs the test with CI=true so a missing driver fails it.
#   bash ci/browser.sh
# Cost: the apt install (~1 min, once); the test itself ~6 s after the dev-deps are built.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "installing chromium and chromium-driver (apt)"
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "error: chromium/chromedriver missing and neither root nor sudo to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q chromium chromium-driver
fi
chromedriver --version
# CI=true: the test fails rather than skips if chromedriver is still not found.
CI=true cargo test --all-features --test browser
echo "browser: passed in $((SECONDS - start)) s"
