#!/usr/bin/env bash
# Builds tokenstore as a static binary (no cgo, so it runs in an image
# without a C library), with source paths trimmed and the version stamped
# where `tokenstore version` reads it.
#
#   deploy/build.sh [OUT]      (default bin/tokenstore)
#
# The version is $VERSION, else `git describe --tags --always --dirty`,
# else "dev".
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bin/tokenstore}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X github.com/tokenstore/tokenstore/cmd/tokenstore/cli.Version=$version" \
	-o "$out" ./cmd/tokenstore
echo "build: $out ($version)" >&2
