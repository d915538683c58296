#!/usr/bin/env bash
# Installs the database servers the test suite starts for real (PostgreSQL, MariaDB), when missing.
# The tests start and stop their own throwaway instances on loopback; nothing is left running.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "Not installed: ${missing[*]}; this user cannot install them, so their tests will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged servers on install; the tests use their own, so stop those.
service postgresql stop >/dev/null 2>&1 || true
service mariadb stop >/dev/null 2>&1 || true
