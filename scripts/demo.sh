#!/usr/bin/env bash
# make demo: runs syncd on the example fleet's host `demo` against the local Docker engine.
# The first run copies repo-layout/ to a working copy you can edit; every run syncs that copy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=${SYNCD_DEMO_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/syncd-demo}
mkdir -p "$work"

"$top/scripts/ensure-docker.sh"
start=$SECONDS
echo "demo: building the demo app's image (FROM scratch, from testdata/images/demoweb; the first time compiles it)" >&2
"$top/scripts/demoweb-image.sh" >/dev/null
echo "demo: image ready in $((SECONDS - start)) s; syncd validates the example repository, then syncs host demo" >&2

if [ ! -d "$work/repo" ]; then
  cp -r "$top/repo-layout" "$work/repo"
  echo "demo: copied repo-layout/ to $work/repo (edit it there)"
fi
# The demo key is public and for this demo only (testdata/age/README.md).
install -m 0600 "$top/testdata/age/demo.agekey" "$work/age.key"

"$top/bin/syncd" validate --repo "$work/repo"
"$top/bin/syncd" sync --repo "$work/repo" --host demo --age-key "$work/age.key" --state-dir "$work/state"

port=$(sed -n 's/^ *DEMO_PORT: *"\{0,1\}\([0-9]*\)"\{0,1\}.*/\1/p' "$work/repo/hosts/demo/host.yaml" | head -1)
cat <<MSG

The demo host runs. Open http://127.0.0.1:${port:-8080}/

Change something and watch it converge:
  \$EDITOR $work/repo/hosts/demo/host.yaml      # e.g. DEMO_MESSAGE
  bin/syncd plan --repo $work/repo --host demo --age-key $work/age.key --state-dir $work/state
  make demo                                     # applies exactly that change
Or let the agent watch the directory, so every save converges (Ctrl-C stops it):
  bin/syncd agent --repo $work/repo --host demo --age-key $work/age.key --state-dir $work/state --config /dev/null
Take it down: docker rm -f \$(docker ps -aq --filter label=com.docker.compose.project=demoweb); docker network rm demoweb_default
MSG
