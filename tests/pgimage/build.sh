#!/usr/bin/env bash
# Builds a PostgreSQL 15 container image from Debian packages, for machines that
# cannot pull the public postgres image. The result behaves like the official
# image for everything tokenstore's tests and development database use.
#
#   tests/pgimage/build.sh [IMAGE]     (default: tokenstore-postgres:15-bookworm)
#
# Needs root, debootstrap (installed with apt-get if missing) and a Debian mirror.
set -euo pipefail

image=${1:-tokenstore-postgres:15-bookworm}
here=$(cd "$(dirname "$0")" && pwd)

if docker image inspect "$image" >/dev/null 2>&1; then
	echo "pgimage: $image already present"
	exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
	echo "pgimage: installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# Use the same mirror apt uses on this machine.
mirror=http://deb.debian.org/debian
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
	if [ -f "$f" ]; then
		m=$(grep -E '^(URIs:|deb )' "$f" | grep -Eo 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
		if [ -n "$m" ]; then mirror=$m; break; fi
	fi
done

root=$(mktemp -d /tmp/pgimage.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "pgimage: debootstrap bookworm with postgresql-15 from $mirror (about a minute)"
debootstrap --variant=minbase --include=postgresql-15 bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
	tail -n 30 "$root.log" >&2
	exit 1
}
rm -f "$root.log"

# Drop the cluster the package created, docs and caches: the entrypoint makes its own.
rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql/15" \
	"$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" \
	"$root/var/cache/apt"/*.bin "$root/var/lib/apt/lists"/*
install -m 0755 "$here/entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"

echo "pgimage: importing $image"
tar -C "$root" -c . | docker import \
	-c 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
	-c 'CMD ["postgres"]' \
	-c 'ENV PGDATA=/var/lib/postgresql/data LANG=C.UTF-8' \
	-c 'EXPOSE 5432' \
	- "$image" >/dev/null
echo "pgimage: built $image"
