#!/usr/bin/env bash
# Runs a command (normally `go test ...`) with a PostgreSQL image the tests can
# start, chosen so that the same command works on a laptop with a registry and
# on a machine with none:
#
#   1. TOKENSTORE_TEST_POSTGRES_IMAGE, when set, is used as it is.
#   2. Otherwise the public image (postgres:15-alpine) when it is present or
#      can be pulled.
#   3. Otherwise an image built here from Debian packages (build.sh), once,
#      and reused; Ryuk (testcontainers' reaper, another image) is disabled
#      then, and the tests remove their containers themselves.
#
#   tests/pgimage/ensure.sh go test ./...
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
public=postgres:15-alpine
local_image=tokenstore-postgres:15-bookworm

if ! docker info >/dev/null 2>&1; then
	echo "ensure: Docker is not reachable; the integration tests need a Docker engine" >&2
	exit 1
fi

if [ -z "${TOKENSTORE_TEST_POSTGRES_IMAGE:-}" ]; then
	if docker image inspect "$public" >/dev/null 2>&1 || docker pull -q "$public" >/dev/null 2>&1; then
		export TOKENSTORE_TEST_POSTGRES_IMAGE=$public
	else
		echo "ensure: $public cannot be pulled; using $local_image built from Debian packages" >&2
		"$here/build.sh" "$local_image" >&2
		export TOKENSTORE_TEST_POSTGRES_IMAGE=$local_image
		export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
	fi
fi

# Testcontainers guesses the address of published ports; inside a container
# it picks the default gateway. When the Docker engine runs on this very host
# (its name is ours), published ports are on loopback: say so, and never send
# test traffic anywhere else.
if [ -z "${TESTCONTAINERS_HOST_OVERRIDE:-}" ] && [ "$(docker info -f '{{.Name}}' 2>/dev/null)" = "$(hostname)" ]; then
	export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
fi

# Containers left behind by a test binary that was killed (Ryuk would have
# reaped them) are removed when they are more than two hours old.
if [ "${TESTCONTAINERS_RYUK_DISABLED:-}" = "true" ]; then
	now=$(date +%s)
	docker ps -aq --filter label=org.tokenstore.test=true | while read -r id; do
		created=$(docker inspect -f '{{.Created}}' "$id" 2>/dev/null || true)
		[ -n "$created" ] || continue
		if [ $((now - $(date -d "$created" +%s))) -gt 7200 ]; then
			docker rm -f -v "$id" >/dev/null 2>&1 || true
		fi
	done
fi

echo "ensure: PostgreSQL image $TOKENSTORE_TEST_POSTGRES_IMAGE" >&2
exec "$@"
