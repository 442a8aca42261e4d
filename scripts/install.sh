#!/usr/bin/env bash
# Set-up of Shoal on a fresh Debian/Ubuntu that already has Node 20: checks Node (>= 20.19),
# installs nats-server and prometheus with apt-get when they are missing, then runs `npm ci` (whose
# `prepare` step builds dist/). Idempotent: a second run skips apt and reinstalls the same locked
# dependencies.
#
# Must never install or change Node, never start, stop or configure a nats-server service, never
# leave a prometheus service running or enabled that this script installed (tests start their own
# Prometheus), and never change package.json or package-lock.json (`npm ci`, not `npm install`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'shoal: %s\n' "$*"; }
die() { printf 'shoal: error: %s\n' "$*" >&2; exit 1; }

# --- Node ----------------------------------------------------------------------------------
need_node='Shoal needs Node.js 20.19 or newer. Install Node 20 (from https://nodejs.org, NodeSource or your distribution), then run scripts/install.sh again.'
if ! command -v node >/dev/null 2>&1; then
  die "node was not found on PATH. $need_node"
fi
node_version="$(node -p 'process.versions.node')"
IFS=. read -r node_major node_minor _ <<<"$node_version"
if (( node_major < 20 || (node_major == 20 && node_minor < 19) )); then
  die "node $node_version is too old. $need_node"
fi
say "node $node_version ok"

# --- nats-server ---------------------------------------------------------------------------
# The same places lib/nats-server/launcher.ts looks (NATS_SERVER_BIN, PATH, then the fixed paths),
# so that "found here" means "Shoal will find it".
find_nats_server() {
  if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
    [[ -x "$NATS_SERVER_BIN" && -f "$NATS_SERVER_BIN" ]] && { printf '%s\n' "$NATS_SERVER_BIN"; return 0; }
    return 1
  fi
  command -v nats-server 2>/dev/null && return 0
  local p
  for p in /usr/sbin/nats-server /usr/local/bin/nats-server; do
    [[ -x "$p" ]] && { printf '%s\n' "$p"; return 0; }
  done
  return 1
}

if nats_bin="$(find_nats_server)"; then
  say "nats-server found at $nats_bin, skipping apt-get"
elif [[ -n "${NATS_SERVER_BIN:-}" ]]; then
  die "NATS_SERVER_BIN is set to $NATS_SERVER_BIN, which is not an executable file. Fix or unset it."
else
  command -v apt-get >/dev/null 2>&1 ||
    die 'nats-server is missing and apt-get is not available. Install nats-server 2.9 or newer yourself, or set NATS_SERVER_BIN=/path/to/nats-server.'
  sudo=''
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 ||
      die 'nats-server is missing; installing it needs root. Run this script as root, install sudo, or run: apt-get install nats-server'
    sudo='sudo'
  fi
  say 'installing nats-server with apt-get ...'
  $sudo apt-get update
  apt_updated=1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server
  nats_bin="$(find_nats_server)" || die 'apt-get finished but nats-server is still not found.'
  say "nats-server installed at $nats_bin"
fi

# --- prometheus ----------------------------------------------------------------------------
# Only spec/grafana/prometheus-live.spec.ts needs it (it runs every dashboard query against a real
# Prometheus, and is skipped without one), so a machine where it cannot be installed gets a warning,
# not an error. Found the way the test finds it: PATH, then Debian's /usr/bin/prometheus.
find_prometheus() {
  command -v prometheus 2>/dev/null && return 0
  [[ -x /usr/bin/prometheus ]] && { printf '%s\n' /usr/bin/prometheus; return 0; }
  return 1
}

skip_prometheus() { printf 'shoal: warning: %s; the real-Prometheus dashboard test will be skipped (install it with: apt-get install prometheus)\n' "$*" >&2; }

if prom_bin="$(find_prometheus)"; then
  say "prometheus found at $prom_bin, skipping apt-get"
elif ! command -v apt-get >/dev/null 2>&1; then
  skip_prometheus 'prometheus is missing and apt-get is not available'
elif [[ "$(id -u)" -ne 0 ]] && ! command -v sudo >/dev/null 2>&1; then
  skip_prometheus 'prometheus is missing and installing it needs root (or sudo)'
else
  sudo=''
  [[ "$(id -u)" -ne 0 ]] && sudo='sudo'
  say 'installing prometheus with apt-get ...'
  # Debian's package starts and enables prometheus.service on a machine run by systemd (port 9090).
  # A policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d and deb-systemd-invoke
  # from starting it; one that is already there (as in Docker images) is left as it is.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    trap '$sudo rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# Written by Shoal'"'"'s scripts/install.sh while it installs prometheus; removed after.\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
  fi
  [[ "${apt_updated:-}" == 1 ]] || $sudo apt-get update
  # Without recommends: no prometheus-node-exporter (and its service).
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
  if [[ "$(head -n 3 "$policy" 2>/dev/null)" == *"Written by Shoal"* ]]; then
    $sudo rm -f "$policy"
    trap - EXIT
  fi
  # The package also enables the service for the next boot: undo that, and stop it should a
  # policy-rc.d of the machine have let it start.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/prometheus ]]; then
    $sudo /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  prom_bin="$(find_prometheus)" || die 'apt-get finished but prometheus is still not found.'
  say "prometheus installed at $prom_bin (its system service is not running; tests start their own)"
fi

# --- openssl -------------------------------------------------------------------------------
# `shoal auth init --tls` (and so `npm run demo -- --secure` and the security tests) makes its CA
# and certificates with openssl; most systems have it, slim container images may not.
if command -v openssl >/dev/null 2>&1; then
  say "openssl found, skipping apt-get"
else
  command -v apt-get >/dev/null 2>&1 || die 'openssl is missing and apt-get is not available: install openssl yourself.'
  sudo=''
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die 'openssl is missing; installing it needs root. Run: apt-get install openssl'
    sudo='sudo'
  fi
  say 'installing openssl with apt-get ...'
  [[ "${apt_updated:-}" == 1 ]] || { $sudo apt-get update; apt_updated=1; }
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl
fi

# --- npm dependencies and build ------------------------------------------------------------
command -v npm >/dev/null 2>&1 || die "npm was not found on PATH. $need_node"
say 'installing dependencies with npm ci (this also builds dist/) ...'
npm ci --no-audit --no-fund
say 'install done'
