#!/usr/bin/env bash
# Builds the test and benchmark tools pinned in tools/<name>/go.mod into a cache outside the
# repository (default ~/.cache/syncd-tools, or $SYNCD_TOOLS), so a second run is a hash check.
# Usage: scripts/tools.sh [--background] [age sops restic compose trivy ...]
#        (default: age sops restic compose)
# Prints nothing on a warm cache; the binaries land in $SYNCD_TOOLS/bin. A build says what it
# builds and why, then every minute how long it has taken.
# --background starts each build that is due in the background and returns at once: its lock
# file $SYNCD_TOOLS/building/<name> holds its PID (the tests that need the tool wait while it is
# alive, see internal/testenv), its output goes to building/<name>.log. make test builds trivy so,
# so the tests that need no trivy do not wait for its ten-minute build.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${SYNCD_TOOLS:-$HOME/.cache/syncd-tools}
mkdir -p "$cache/bin" "$cache/stamps" "$cache/building"
background=0
if [ "${1:-}" = --background ]; then
  background=1
  shift
fi
[ $# -gt 0 ] || set -- age sops restic compose

# build TOOL WHY: builds every main package of tools/TOOL, then writes its stamp.
build() {
  local tool=$1 why=$2 dir=$here/tools/$1 start=$SECONDS last=$SECONDS pkgs pkg name b
  local env=()
  [ "$tool" = trivy ] && env=(GOEXPERIMENT=jsonv2)
  echo "tools.sh: building $tool ($why; the tests run it; trivy takes over ten minutes, the others one or two)" >&2
  # The tool directive lists the main packages; build each under its own name.
  pkgs=$(sed -n '/^tool (/,/^)/{/^tool (/d;/^)/d;p}; s/^tool \([^ (]*\)$/\1/p' "$dir/go.mod")
  for pkg in $pkgs; do
    name=$(basename "$pkg")
    [ "$name" = cmd ] && name=docker-compose
    (cd "$dir" && env "${env[@]}" CGO_ENABLED=0 go build -trimpath -o "$cache/bin/$name.tmp" "$pkg") &
    b=$!
    while kill -0 "$b" 2>/dev/null; do
      sleep 2
      if [ $((SECONDS - last)) -ge 60 ]; then
        echo "tools.sh: still building $tool ($name), $((SECONDS - start)) s so far" >&2
        last=$SECONDS
      fi
    done
    wait "$b" || { echo "tools.sh: building $tool ($pkg) failed after $((SECONDS - start)) s" >&2; return 1; }
    mv "$cache/bin/$name.tmp" "$cache/bin/$name"
  done
  echo "$3" > "$cache/stamps/$tool"
  echo "tools.sh: $tool built in $((SECONDS - start)) s" >&2
}

for tool in "$@"; do
  dir=$here/tools/$tool
  [ -f "$dir/go.mod" ] || { echo "tools.sh: no tools/$tool/go.mod" >&2; exit 2; }
  sum=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)
  stamp=$cache/stamps/$tool
  why="not built yet"
  if [ -f "$stamp" ]; then
    [ "$(cat "$stamp")" = "$sum" ] && continue
    why="tools/$tool/go.mod changed since the last build"
  fi
  lock=$cache/building/$tool
  if [ -f "$lock" ] && kill -0 "$(cat "$lock")" 2>/dev/null; then
    echo "tools.sh: $tool is being built already (pid $(cat "$lock"); log: $lock.log)" >&2
    [ $background = 1 ] && continue
    while kill -0 "$(cat "$lock" 2>/dev/null || echo 0)" 2>/dev/null; do sleep 2; done
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && continue
  fi
  if [ $background = 1 ]; then
    ( trap 'rm -f "$lock"' EXIT; build "$tool" "$why" "$sum" ) >"$lock.log" 2>&1 </dev/null &
    echo $! >"$lock"
    echo "tools.sh: building $tool in the background ($why; log: $lock.log); the tests that need it wait for it" >&2
  else
    build "$tool" "$why" "$sum"
  fi
done
