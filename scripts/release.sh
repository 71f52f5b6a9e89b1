#!/usr/bin/env bash
# Builds a release of syncd into OUT (default dist/VERSION):
#   syncd_linux_amd64, syncd_linux_arm64   static binaries (CGO_ENABLED=0), version and commit stamped
#   syncd.service                          the systemd unit (deploy/syncd.service)
#   install.sh                             deploy/install.sh.in with the binaries' sha256 and the unit in it
#   syncd_image_linux_{amd64,arm64}.tar    FROM scratch images (docker save), when a Docker engine answers
#   SHA256SUMS                             of all of the above
# Usage: scripts/release.sh VERSION [OUT]   (make release VERSION=v1.2.3)
# IMAGE=0 skips the images; BASE_URL changes the default download address written into install.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
version=${1:?usage: scripts/release.sh VERSION [OUT]  (VERSION like v1.2.3)}
out=${2:-$here/dist/$version}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z.-]+)?$ ]] || { echo "release.sh: VERSION $version: use a semantic version like v1.2.3" >&2; exit 2; }
base_url=${BASE_URL:-https://github.com/syncd-dev/syncd/releases/download/$version}
commit=$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$here" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/syncd_linux_* "$out"/syncd_image_* "$out"/SHA256SUMS "$out"/install.sh "$out"/syncd.service
for arch in amd64 arm64; do
  echo "release.sh: building syncd $version for linux/$arch" >&2
  (cd "$here" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.buildVersion=$version -X main.buildCommit=$commit" \
    -o "$out/syncd_linux_$arch" ./cmd/syncd)
done
cp "$here/deploy/syncd.service" "$out/syncd.service"

sum() { sha256sum "$1" | cut -d' ' -f1; }
# Placeholders are replaced literally (awk's gsub would read & in a URL as the match).
awk -v version="$version" -v amd64="$(sum "$out/syncd_linux_amd64")" -v arm64="$(sum "$out/syncd_linux_arm64")" \
  -v base_url="$base_url" -v unit="$out/syncd.service" '
  function put(s, from, to,   i) {
    while ((i = index(s, from)) > 0) s = substr(s, 1, i - 1) to substr(s, i + length(from))
    return s
  }
  $0 == "@UNIT@" { while ((getline line < unit) > 0) print line; next }
  {
    $0 = put($0, "@VERSION@", version); $0 = put($0, "@SHA256_AMD64@", amd64)
    $0 = put($0, "@SHA256_ARM64@", arm64); $0 = put($0, "@BASE_URL@", base_url); print
  }' "$here/deploy/install.sh.in" > "$out/install.sh"
chmod 0755 "$out/install.sh"
if grep -n '@[A-Z0-9_]*@' "$out/install.sh" >&2; then echo "release.sh: install.sh has a placeholder left" >&2; exit 1; fi
sh -n "$out/install.sh"

if [ "${IMAGE:-1}" != 0 ] && docker version >/dev/null 2>&1; then
  # BuildKit when the client has buildx; else the classic builder, enough for FROM scratch,
  # whose deprecation notice is noise here: the build's output is shown when it fails.
  if docker buildx version >/dev/null 2>&1; then buildkit=1; else buildkit=0; fi
  for arch in amd64 arm64; do
    ctx=$(mktemp -d)
    cp "$out/syncd_linux_$arch" "$ctx/syncd"
    cp "$here/deploy/Dockerfile" "$ctx/Dockerfile"
    echo "release.sh: building the image syncd:$version-$arch (FROM scratch)" >&2
    if ! log=$(DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-$buildkit} docker build -q --platform "linux/$arch" \
      --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.revision=$commit" \
      -t "syncd:$version-$arch" "$ctx" 2>&1); then
      echo "$log" >&2
      rm -rf "$ctx"
      echo "release.sh: the image syncd:$version-$arch did not build (output above)" >&2
      exit 1
    fi
    rm -rf "$ctx"
    docker save -o "$out/syncd_image_linux_$arch.tar" "syncd:$version-$arch"
  done
elif [ "${IMAGE:-1}" != 0 ]; then
  echo "release.sh: no Docker engine answers: no image built (IMAGE=0 says you meant that)" >&2
fi

(cd "$out" && sha256sum syncd_linux_* syncd.service install.sh $(ls syncd_image_* 2>/dev/null) > SHA256SUMS)
echo "release.sh: syncd $version ($commit) in $out:" >&2
(cd "$out" && cat SHA256SUMS) >&2
