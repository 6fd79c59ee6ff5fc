#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 and that psql is installed.
# On a machine without one it installs Debian's PostgreSQL with apt-get, starts the cluster
# and gives the `postgres` role the password `postgres` (used by the scripts' URLs; ignored
# where the server trusts local connections). Safe to run again.
set -euo pipefail

PG_PORT=5432

reachable() { (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "ensure-postgres: installing $* with apt-get" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! reachable; then
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    as_root pg_createcluster "$version" main >/dev/null
  fi
  echo "ensure-postgres: starting PostgreSQL $version" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do reachable && break; sleep 0.5; done
  reachable || { echo "ensure-postgres: PostgreSQL did not start on port $PG_PORT" >&2; exit 1; }
  as_root runuser -u postgres -- psql -qc "alter user postgres password 'postgres'" >/dev/null
fi

command -v psql >/dev/null 2>&1 || apt_install postgresql-client
