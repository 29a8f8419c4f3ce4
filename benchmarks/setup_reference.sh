#!/usr/bin/env bash
# Installs the reference servers that benchmarks/bench_proxy.py compares edgenode against
# (nginx, varnish) and the wrk load generator, from Debian packages.  Benchmarks only: the
# tests never need any of these.  Run as root (or with sudo) on a Debian/Ubuntu machine.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# nginx-light is the smallest build that still has proxy_cache; fall back to plain nginx.
$SUDO apt-get install -y -qq --no-install-recommends wrk || echo "wrk not available: the Python load generator will be used"
$SUDO apt-get install -y -qq --no-install-recommends nginx-light \
  || $SUDO apt-get install -y -qq --no-install-recommends nginx
$SUDO apt-get install -y -qq --no-install-recommends varnish || echo "varnish not available: skipped in the comparison"

# The packages start system services on port 80/6081; the benchmark runs its own instances.
for svc in nginx varnish; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  elif command -v service >/dev/null 2>&1; then
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  fi
done

for bin in wrk nginx varnishd; do
  if command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ]; then
    echo "ok: $bin"
  else
    echo "missing: $bin"
  fi
done
