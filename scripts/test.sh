#!/usr/bin/env bash
# Runs every test. The end-to-end tests start their own Temporal dev server and Redis on free
# ports and talk to the local Docker engine; nothing needs to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
# --gvisor: the abuse and egress suites also run under gVisor (runsc registered with dockerd).
bash scripts/install-deps.sh --gvisor
# The demo test (e2e demo::) runs the sample npm project in the full image, as up.sh does.
docker image inspect ae-sandbox:full >/dev/null 2>&1 || bash scripts/build-full-image.sh ae-sandbox:full

# The e2e harness runs the real binaries, so build them before the tests (with the tests, so
# dependencies are built once with the features the tests unify in).
cargo build --workspace --bins --tests
cargo test --workspace --no-fail-fast -- --test-threads="${AE_TEST_THREADS:-4}"

# Nothing the tests started may be left behind: every test worker labels its sandboxes with an
# owner starting with ae-test-.
left=$(docker ps -a --filter label=ae.managed=true --format '{{.ID}} {{.Label "ae.owner"}}' | grep ' ae-test-' || true)
if [ -n "$left" ]; then
  echo "sandboxes left behind by the tests:" >&2
  echo "$left" >&2
  exit 1
fi
nets=$(docker network ls --filter label=ae.managed=true --format '{{.Name}} {{.Label "ae.owner"}}' | grep ' ae-test-' || true)
if [ -n "$nets" ]; then
  echo "sandbox networks left behind by the tests:" >&2
  echo "$nets" >&2
  exit 1
fi
echo "test.sh: no sandbox or sandbox network left behind"
