#!/usr/bin/env bash
# Install what the end-to-end tests (tests/e2e) need, idempotently:
#   - Debian's Chromium and fonts (browser downloads by Playwright are blocked here, and the
#     Python playwright package drives /usr/bin/chromium instead), only if missing and root;
#   - the pinned Microsoft 365 Agents Playground, via `npm ci` in tests/e2e, only if missing.
# Never fails the build for a missing optional tool: without node/npm the e2e tests skip with a
# clear reason, so this script says so and exits 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E_DIR="$ROOT/tests/e2e"
CHROMIUM=/usr/bin/chromium
PLAYGROUND="$E2E_DIR/node_modules/@microsoft/m365agentsplayground/cli.js"

log() { printf 'e2e-deps: %s\n' "$*"; }

if [[ -x "$CHROMIUM" ]]; then
    log "chromium present ($CHROMIUM)"
elif [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium and fonts-liberation from Debian"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation; }; then
        log "WARNING: could not install chromium; e2e tests will skip"
    fi
else
    log "WARNING: $CHROMIUM missing and cannot apt-get install (not root or no apt); e2e tests will skip"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node/npm not found; skipping the Agents Playground install (e2e tests will skip)"
    exit 0
fi

if [[ -f "$PLAYGROUND" ]]; then
    log "Agents Playground present ($(node -p "require('$E2E_DIR/node_modules/@microsoft/m365agentsplayground/package.json').version"))"
else
    log "installing the pinned Agents Playground (npm ci in tests/e2e)"
    if ! (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error); then
        log "WARNING: npm ci failed; e2e tests will skip"
    fi
fi
log "ready"
