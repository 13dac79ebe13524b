#!/usr/bin/env bash
# Installs the real peers the tests run against (Prometheus, Alertmanager, promtool, amtool) and the kernel
# tools the conntrack lab needs. Idempotent: does nothing when every binary is already there.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v nft >/dev/null || need+=(nftables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ip >/dev/null || need+=(iproute2)
# kubectl renders the kustomize overlays in tests/deploy. Machines here ship a current one; Debian's package is the
# fallback (older, but it has `kubectl kustomize`).
command -v kubectl >/dev/null || need+=(kubernetes-client)
# actionlint (make lint) checks the workflows' run: scripts with shellcheck when it is on PATH.
command -v shellcheck >/dev/null || need+=(shellcheck)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps the install small; the Debian prometheus package otherwise pulls node exporter too.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start their services on install on systemd machines; tests start their own copies.
