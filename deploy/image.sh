#!/usr/bin/env bash
# Builds the container image from a binary built by deploy/build.sh:
#
#   deploy/image.sh BINARY [TAG]      (default tag tokenstore:dev)
#
# The build context is a fresh directory holding only the binary and the
# build host's CA bundle, so nothing else of the checkout reaches the image
# and nothing is pulled (the Dockerfile starts FROM scratch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

binary=${1:?usage: deploy/image.sh BINARY [TAG]}
tag=${2:-tokenstore:dev}
ca_bundle=/etc/ssl/certs/ca-certificates.crt

# A binary that needs a C library would not start in an empty image.
if ! go version -m "$binary" | grep -q 'CGO_ENABLED=0'; then
	echo "image: $binary is not a static build: make it with deploy/build.sh" >&2
	exit 1
fi
if [ ! -s "$ca_bundle" ]; then
	echo "image: $ca_bundle is missing: install the ca-certificates package" >&2
	exit 1
fi

ctx=$(mktemp -d /tmp/tokenstore-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp "$binary" "$ctx/tokenstore"
cp "$ca_bundle" "$ctx/ca-certificates.crt"
chmod 0755 "$ctx/tokenstore"
chmod 0644 "$ctx/ca-certificates.crt"
version=$("$ctx/tokenstore" version)

# Without the buildx plugin, recent docker clients need the classic
# builder asked for by name.
if ! docker buildx version >/dev/null 2>&1; then
	export DOCKER_BUILDKIT=0
fi
if ! out=$(docker build -q --build-arg "VERSION=$version" -f "$here/Dockerfile" -t "$tag" "$ctx" 2>&1); then
	echo "$out" >&2
	exit 1
fi
echo "image: $tag ($version, $(docker image inspect -f '{{.Size}}' "$tag") bytes)" >&2
