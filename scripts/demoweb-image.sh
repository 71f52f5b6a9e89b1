#!/usr/bin/env bash
# Builds the demo app's image syncd-demoweb:1.0.0 (used by repo-layout/apps/demoweb, `make demo`
# and the Docker tests) from testdata/images/demoweb: a static Go binary in a FROM scratch
# image, so no registry is contacted. Extra arguments are more tags for the same image, e.g.
#   scripts/demoweb-image.sh syncd-demoweb:1.0.1
# A second run with nothing changed only rebuilds the binary from Go's cache and compares a
# checksum, stored as an image label; it prints nothing then.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tags=(syncd-demoweb:1.0.0 "$@")
label=dev.syncd.demoweb.sum

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
# -buildvcs=false: the binary, and so the image, must not change with every commit.
(cd "$here" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' \
  -o "$ctx/demoweb" ./testdata/images/demoweb)
cp "$here/testdata/images/demoweb/Dockerfile" "$ctx/"
sum=$(cat "$ctx/demoweb" "$ctx/Dockerfile" | sha256sum | cut -c1-16)

missing=()
for tag in "${tags[@]}"; do
  have=$(docker image inspect --format "{{index .Config.Labels \"$label\"}}" "$tag" 2>/dev/null || true)
  [ "$have" = "$sum" ] || missing+=("$tag")
done
[ ${#missing[@]} -gt 0 ] || exit 0

args=()
for tag in "${missing[@]}"; do args+=(-t "$tag"); done
# The classic builder: enough for FROM scratch, and present on old engines without buildx.
# Its deprecation notice is noise here; the output is shown when the build fails.
if ! out=$(DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build -q --label "$label=$sum" "${args[@]}" "$ctx" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "demoweb-image.sh: built ${missing[*]} ($sum)" >&2
