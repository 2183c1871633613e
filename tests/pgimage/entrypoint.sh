#!/bin/sh
# Entrypoint of the locally built PostgreSQL test image. It honours the same
# environment variables and command line as the official postgres image
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA; "postgres -c k=v ..."),
# so testcontainers' postgres module drives both images the same way.
set -eu

BIN=/usr/lib/postgresql/15/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
export PGDATA

if [ "${1:-}" = "postgres" ]; then
	shift
fi

as_postgres() {
	setpriv --reuid=postgres --regid=postgres --init-groups "$@"
}

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "entrypoint: POSTGRES_PASSWORD must be set" >&2
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	chown postgres "$pwfile"
	as_postgres "$BIN/initdb" --username="$POSTGRES_USER" --pwfile="$pwfile" \
		--encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	if [ "$POSTGRES_DB" != "postgres" ]; then
		as_postgres "$BIN/postgres" --single -D "$PGDATA" -j postgres >/dev/null <<SQL
CREATE DATABASE "$POSTGRES_DB" OWNER "$POSTGRES_USER";
SQL
	fi
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups \
	"$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
