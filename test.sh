#!/usr/bin/env bash
# Set everything up (Python packages, Debian's Chromium for the browser test) and run every test.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh requirements-test.txt
if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest tests -q -ra "$@"
