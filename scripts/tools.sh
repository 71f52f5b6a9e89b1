#!/usr/bin/env bash
# Builds the test and benchmark tools pinned in tools/<name>/go.mod into a cache outside the
# repository (default ~/.cache/syncd-tools, or $SYNCD_TOOLS), so a second run is a hash check.
# Usage: scripts/tools.sh [age sops restic compose trivy ...]   (default: age sops restic compose)
# Prints nothing on a warm cache; the binaries land in $SYNCD_TOOLS/bin.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${SYNCD_TOOLS:-$HOME/.cache/syncd-tools}
mkdir -p "$cache/bin" "$cache/stamps"
[ $# -gt 0 ] || set -- age sops restic compose

for tool in "$@"; do
  dir=$here/tools/$tool
  [ -f "$dir/go.mod" ] || { echo "tools.sh: no tools/$tool/go.mod" >&2; exit 2; }
  sum=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)
  stamp=$cache/stamps/$tool
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    continue
  fi
  env=()
  [ "$tool" = trivy ] && env=(GOEXPERIMENT=jsonv2)
  echo "tools.sh: building $tool (first run only; trivy takes over ten minutes)" >&2
  start=$SECONDS
  # The tool directive lists the main packages; build each under its own name.
  pkgs=$(sed -n '/^tool (/,/^)/{/^tool (/d;/^)/d;p}; s/^tool \([^ (]*\)$/\1/p' "$dir/go.mod")
  for pkg in $pkgs; do
    name=$(basename "$pkg")
    [ "$name" = cmd ] && name=docker-compose
    (cd "$dir" && env "${env[@]}" CGO_ENABLED=0 go build -trimpath -o "$cache/bin/$name" "$pkg")
  done
  echo "$sum" > "$stamp"
  echo "tools.sh: $tool built in $((SECONDS - start)) s" >&2
done
