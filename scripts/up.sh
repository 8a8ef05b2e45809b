#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, starts a Temporal dev server (Web UI
# on http://127.0.0.1:8233) and Redis unless they already run, builds the sandbox images (the
# full one, with Node.js/npm, Python, git and build tools, from Debian packages, is the default;
# the busybox one is allowed per request), then runs the worker in the foreground on task queue
# `autonomous-enterprise`. Ctrl-C stops the worker; the services keep running (scripts/down.sh
# stops them). `AE_SANDBOX_IMAGE=ae-sandbox:latest bash scripts/up.sh` skips the full image
# (busybox only: a minute faster on a fresh machine, but no npm).
#
# The egress settings let deploy sandboxes reach the demo platform (scripts/demo.sh) as
# `demo-platform.local`, i.e. 127.0.0.1:8787 on this host; set AE_EGRESS_* yourself to replace
# them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

state=.run
mkdir -p "$state"
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 120); do port_open "$1" "$2" && return 0; sleep 0.5; done
  echo "up.sh: $3 did not start on $1:$2 (see $state/)" >&2; return 1
}

if ! port_open 127.0.0.1 6379; then
  echo "up.sh: starting redis-server on 6379"
  redis-server --port 6379 --bind 127.0.0.1 --daemonize yes \
    --logfile "$PWD/$state/redis.log" --pidfile "$PWD/$state/redis.pid" --dir "$PWD/$state"
  wait_port 127.0.0.1 6379 redis
fi
if ! port_open 127.0.0.1 7233; then
  echo "up.sh: starting temporal server start-dev (UI http://127.0.0.1:8233)"
  nohup temporal server start-dev --ip 127.0.0.1 --port 7233 --ui-port 8233 \
    --db-filename "$PWD/$state/temporal.db" >"$state/temporal.log" 2>&1 &
  echo $! >"$state/temporal.pid"
  wait_port 127.0.0.1 7233 temporal
fi

cargo build --release -p ae-worker
worker=target/release/ae-worker
export AE_SANDBOX_IMAGE="${AE_SANDBOX_IMAGE:-ae-sandbox:full}"
docker image inspect ae-sandbox:latest >/dev/null 2>&1 || "$worker" image build --tag ae-sandbox:latest
if ! docker image inspect "$AE_SANDBOX_IMAGE" >/dev/null 2>&1; then
  if [ "$AE_SANDBOX_IMAGE" = ae-sandbox:full ]; then
    echo "up.sh: building ae-sandbox:full from Debian packages (a few minutes, once)"
    bash scripts/build-full-image.sh ae-sandbox:full
  else
    "$worker" image build --tag "$AE_SANDBOX_IMAGE"
  fi
fi
export AE_ALLOWED_IMAGES="${AE_ALLOWED_IMAGES:-ae-sandbox:full,ae-sandbox:latest}"
export AE_EGRESS_HOSTS="${AE_EGRESS_HOSTS:-demo-platform.local=127.0.0.1}"
export AE_EGRESS_PORTS="${AE_EGRESS_PORTS:-80,443,8787}"
export AE_EGRESS_PRIVATE_ALLOW="${AE_EGRESS_PRIVATE_ALLOW:-127.0.0.1:8787}"

echo "up.sh: worker polling autonomous-enterprise at $TEMPORAL_ADDRESS (image $AE_SANDBOX_IMAGE); Web UI http://127.0.0.1:8233"
echo "up.sh: try the demo from another shell: bash scripts/demo.sh"
exec "$worker" run
