#!/usr/bin/env bash
# Installs what pgwarden's demo and test suite need on Debian/Ubuntu:
# PostgreSQL server binaries (always), and with --test also the clients the
# integration tests drive (Chromium for the ticket service's CORS test and the
# sign-on browser test, HAProxy as the load balancer in front of the replicas
# test).
# As root it installs with apt-get; otherwise it says exactly what to install.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ "$want_test" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "pgwarden needs these Debian/Ubuntu packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  # PostgreSQL is required; the others only enable tests that skip without them.
  for p in "${missing[@]}"; do [ "$p" = postgresql ] && exit 1; done
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a cluster of its own; pgwarden does not use it.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true; done
fi
# Nor does it use a haproxy service the package may have started.
if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/haproxy ]; then
  service haproxy stop >/dev/null 2>&1 || true
fi
