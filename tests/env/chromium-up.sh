#!/usr/bin/env bash
# Headless Chromium and chromedriver for the dashboard's browser test (tests/api/dashboard.rs).
# Installs Debian's chromium and chromium-driver when missing. Idempotent, quiet; starts
# nothing (the test runs its own chromedriver). Prints KEY=VALUE lines for eval.
set -euo pipefail

find_bin() { for b in "$@"; do command -v "$b" 2>/dev/null && return 0; done; return 1; }

if ! find_bin chromium chromium-browser >/dev/null || ! find_bin chromedriver >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi

echo "LEADROUTER_TEST_CHROMIUM=$(find_bin chromium chromium-browser)"
echo "LEADROUTER_TEST_CHROMEDRIVER=$(find_bin chromedriver)"
