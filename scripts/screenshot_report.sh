#!/usr/bin/env bash
# Screenshot an HTML report in headless Chromium (Debian: apt-get install -y chromium), to read it
# as a newcomer would before calling a report done.
# Usage: scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH] [HEIGHT]
set -euo pipefail
page=$(realpath "$1")
out=$(realpath -m "$2")
width=${3:-1280}
height=${4:-2400}
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="${width},${height}" --screenshot="$out" "file://$page" >/dev/null 2>&1
echo "wrote $out"
