#!/usr/bin/env bash
# Starts the development PostgreSQL for `task run`: a container named
# tokenstore-dev-postgres from the same image the tests use, its data in the
# Docker volume tokenstore-dev-pgdata (kept between runs, so data survives a
# restart), published on 127.0.0.1:55432 only. Run through ensure.sh, which
# picks the image:  tests/pgimage/ensure.sh tests/pgimage/devdb.sh
set -euo pipefail

name=tokenstore-dev-postgres
image=${TOKENSTORE_TEST_POSTGRES_IMAGE:?run through tests/pgimage/ensure.sh}

if [ -z "$(docker ps -aq --filter "name=^${name}$")" ]; then
	echo "devdb: creating $name from $image (data in volume tokenstore-dev-pgdata)"
	docker run -d --name "$name" \
		-e POSTGRES_USER=tokenstore -e POSTGRES_PASSWORD=tokenstore -e POSTGRES_DB=tokenstore \
		-v tokenstore-dev-pgdata:/var/lib/postgresql/data \
		-p 127.0.0.1:55432:5432 \
		"$image" >/dev/null
elif [ "$(docker inspect -f '{{.State.Running}}' "$name")" != "true" ]; then
	echo "devdb: starting $name"
	docker start "$name" >/dev/null
fi

for _ in $(seq 1 120); do
	if docker exec "$name" sh -c 'PATH=$PATH:/usr/lib/postgresql/15/bin pg_isready -q -h 127.0.0.1 -U tokenstore -d tokenstore' 2>/dev/null; then
		echo "devdb: PostgreSQL ready on 127.0.0.1:55432"
		exit 0
	fi
	sleep 0.5
done
echo "devdb: PostgreSQL did not become ready; see: docker logs $name" >&2
exit 1
