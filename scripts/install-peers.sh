#!/usr/bin/env bash
# Installs the servers stage is measured against (`stage-bench`, docs/performance.md) from
# Debian's packages: nats-server and redis-server. Both packages enable a system service on
# install; stage-bench starts its own copies on loopback ports of their own, so the system
# services are stopped and disabled again where systemd runs them.
set -euo pipefail

missing=""
command -v nats-server >/dev/null 2>&1 || missing="$missing nats-server"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -z "$missing" ] && exit 0

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for unit in nats-server redis-server; do
    $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
