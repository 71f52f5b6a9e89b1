#!/usr/bin/env bash
# Makes sure a Docker engine answers: starts dockerd (installing docker.io from Debian if it is
# missing) when none does. Used by .ci/run and `make demo`; a no-op where Docker already runs.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io from Debian" >&2
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  echo "ensure-docker: no Docker engine answers; starting dockerd (log: /tmp/dockerd.log)" >&2
  # A stale pid file from a killed daemon stops a new one from starting.
  $sudo rm -f /var/run/docker.pid /run/docker.pid
  $sudo sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
docker info >/dev/null 2>&1 || { echo "ensure-docker: dockerd did not come up; see /tmp/dockerd.log" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
