#!/usr/bin/env bash
# Starts the development PostgreSQL for `task run`: a container named
# tokenstore-dev-postgres from the same image the tests use, its data in the
# Docker volume tokenstore-dev-pgdata (kept between runs, so data survives a
# restart), published on 127.0.0.1 only, on the port of the setting
# dev.database_port (TOKENSTORE_DEV_DATABASE_PORT, default 55432: the
# default of cmd/tokenstore/cli.DefaultDevDatabasePort, which a test checks).
# Run through ensure.sh, which picks the image:
#   tests/pgimage/ensure.sh tests/pgimage/devdb.sh
set -euo pipefail

name=tokenstore-dev-postgres
image=${TOKENSTORE_TEST_POSTGRES_IMAGE:?run through tests/pgimage/ensure.sh}
port=${TOKENSTORE_DEV_DATABASE_PORT:-55432}
case $port in
'' | *[!0-9]* | 0*) echo "devdb: TOKENSTORE_DEV_DATABASE_PORT=$port is not a port number" >&2; exit 1 ;;
esac

if [ -z "$(docker ps -aq --filter "name=^${name}$")" ]; then
	echo "devdb: creating $name from $image (data in volume tokenstore-dev-pgdata)"
	docker run -d --name "$name" \
		-e POSTGRES_USER=tokenstore -e POSTGRES_PASSWORD=tokenstore -e POSTGRES_DB=tokenstore \
		-v tokenstore-dev-pgdata:/var/lib/postgresql/data \
		-p "127.0.0.1:$port:5432" \
		"$image" >/dev/null
else
	# The port is fixed when the container is made: say so rather than
	# start it on another port than the one --dev will connect to.
	published=$(docker inspect -f '{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostPort}}{{end}}{{end}}' "$name")
	if [ "$published" != "$port" ]; then
		echo "devdb: $name publishes port $published, not $port (TOKENSTORE_DEV_DATABASE_PORT):" \
			"set TOKENSTORE_DEV_DATABASE_PORT=$published, or remove the container (docker rm -f $name; the data stays in the volume)" >&2
		exit 1
	fi
	if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != "true" ]; then
		echo "devdb: starting $name"
		docker start "$name" >/dev/null
	fi
fi

for _ in $(seq 1 120); do
	if docker exec "$name" sh -c 'PATH=$PATH:/usr/lib/postgresql/15/bin pg_isready -q -h 127.0.0.1 -U tokenstore -d tokenstore' 2>/dev/null; then
		echo "devdb: PostgreSQL ready on 127.0.0.1:$port (stop it with: task run:stop)"
		exit 0
	fi
	sleep 0.5
done
echo "devdb: PostgreSQL did not become ready; see: docker logs $name" >&2
exit 1
