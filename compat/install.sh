#!/usr/bin/env bash
# Installs the client runtimes of pgwarden's compatibility suite (compat/):
# Debian's JDK, pgjdbc, psycopg2, psycopg 3, SQLAlchemy, psql, and the real tools
# pgcli and pandas (python3-pandas), and npm's pg and Malloy (pinned by the
# package-lock.json in compat/clients/node and compat/clients/malloy). As root
# it installs with apt-get; otherwise it says what to install and installs only
# the npm part.
# Idempotent: it does nothing when everything is present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

py=/usr/bin/python3
missing=()
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
[ -x "$py" ] || missing+=(python3)
if [ -x "$py" ]; then
  "$py" -c 'import psycopg2' 2>/dev/null || missing+=(python3-psycopg2)
  "$py" -c 'import psycopg' 2>/dev/null || missing+=(python3-psycopg)
  "$py" -c 'import sqlalchemy' 2>/dev/null || missing+=(python3-sqlalchemy)
  "$py" -c 'import pandas' 2>/dev/null || missing+=(python3-pandas)
  "$py" -c 'import pgcli.main' 2>/dev/null || missing+=(pgcli)
else
  missing+=(python3-psycopg2 python3-psycopg python3-sqlalchemy python3-pandas pgcli)
fi
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "compat: the suite's clients need these Debian packages: ${missing[*]}" >&2
    echo "compat: install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# npm packages, each folder pinned by its package-lock.json: node-postgres, and
# Malloy (@malloydata/malloy and @malloydata/db-postgres, about 36 MB).
npm_ci() { # folder, a file that exists once installed, what to call it
  if command -v npm >/dev/null 2>&1 && [ ! -f "$here/clients/$1/node_modules/$2" ]; then
    if ! (cd "$here/clients/$1" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
      echo "compat: npm ci in compat/clients/$1 failed; $3 checks will be skipped" >&2
      # In CI a missing client is a failure (the suite fails it too); locally it is a skip.
      [ -n "${CI:-}" ] && exit 1
    fi
  fi
  return 0
}
npm_ci node pg/package.json node-postgres
npm_ci malloy @malloydata/db-postgres/package.json Malloy
