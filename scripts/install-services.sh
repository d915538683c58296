#!/usr/bin/env bash
# Installs the database servers the test suite starts for real, when they are missing.
# The tests start and stop their own throwaway instances on loopback; nothing is left running.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL is not installed and this user cannot install it; its tests will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# Debian starts a cluster on install; the tests use their own, so stop the packaged one.
service postgresql stop >/dev/null 2>&1 || true
