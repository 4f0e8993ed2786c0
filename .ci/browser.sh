#!/usr/bin/env bash
# Make a chromium available for the browser tests of the web UI (tests/ui, docs/ui.md):
# reuse one on PATH, else install Debian's chromium package with apt (as .ci/rabbitmq.sh
# does RabbitMQ). Playwright drives it through executable_path; browsers are never
# downloaded by Playwright. Runs as root on Debian/Ubuntu with access to its mirrors.
# Prints the chromium's path on stdout; all logging goes to stderr.
set -euo pipefail

log() { echo "browser.sh: $*" >&2; }

find_chromium() {
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

path=$(find_chromium)
if [ -z "$path" ]; then
    log "installing Debian's chromium with apt"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
    path=$(find_chromium)
fi
if [ -z "$path" ]; then
    log "no chromium after the install"
    exit 1
fi
log "$("$path" --version 2>/dev/null || echo chromium) at $path"
echo "$path"
