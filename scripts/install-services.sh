#!/usr/bin/env bash
# Installs the servers the test suite starts for real when missing: PostgreSQL and MariaDB (the BSO
# server's databases), Prometheus and its Pushgateway (the metrics exporters and dashboard queries).
# The tests start and stop their own throwaway instances on loopback; nothing is left running.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
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
for name in postgresql mariadb prometheus prometheus-pushgateway prometheus-node-exporter; do
  service "$name" stop >/dev/null 2>&1 || true
done
