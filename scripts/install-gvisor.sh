#!/usr/bin/env bash
# Installs gVisor (Debian's `runsc`) and registers it with the local Docker engine as two OCI
# runtimes, then smoke-tests a hardened container under each. Run through
# `scripts/install-deps.sh --gvisor`. Idempotent; never restarts dockerd (SIGHUP reloads the
# runtimes) and keeps every other key of /etc/docker/daemon.json.
#
# Why two runtimes (measured, see README "Isolation tiers"): Debian's runsc (2022-12-19) cannot
# set up its own network stack on recent kernels ("cannot run with network enabled in root
# network namespace"), and its KVM platform hangs on paravirtual KVM. So:
#   runsc        --network=none : sandboxes without network (the default)
#   runsc-egress --network=host : sandboxes on their internal egress network; the container
#                                 keeps the namespace Docker gives it (gVisor's netstack is
#                                 bypassed, the internal network still confines it)
# both on the ptrace platform.
set -euo pipefail

RUNTIME_NONE="${AE_GVISOR_RUNTIME_NAME:-runsc}"
RUNTIME_EGRESS="${AE_GVISOR_EGRESS_RUNTIME_NAME:-runsc-egress}"
DAEMON_JSON="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
SMOKE_IMAGE="ae-gvisor-smoke:latest"

if ! command -v runsc >/dev/null; then
  echo "install-gvisor: apt-get install runsc"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends runsc
fi
RUNSC="$(command -v runsc)"

# Merge the two runtimes into daemon.json, keeping every other key; rewrite only on change.
changed=$(python3 - "$DAEMON_JSON" "$RUNSC" "$RUNTIME_NONE" "$RUNTIME_EGRESS" <<'PY'
import json, os, sys
path, runsc, none_name, egress_name = sys.argv[1:]
try:
    with open(path) as f:
        cfg = json.load(f)
except FileNotFoundError:
    cfg = {}
want = {
    none_name: {"path": runsc, "runtimeArgs": ["--platform=ptrace", "--oci-seccomp", "--network=none"]},
    egress_name: {"path": runsc, "runtimeArgs": ["--platform=ptrace", "--oci-seccomp", "--network=host"]},
}
runtimes = cfg.setdefault("runtimes", {})
if all(runtimes.get(k) == v for k, v in want.items()):
    print("no")
    sys.exit(0)
runtimes.update(want)
os.makedirs(os.path.dirname(path), exist_ok=True)
tmp = path + ".ae-tmp"
with open(tmp, "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
print("yes")
PY
)

registered() {
  docker info --format '{{json .Runtimes}}' 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if all(n in r for n in sys.argv[1:]) else 1)' \
      "$RUNTIME_NONE" "$RUNTIME_EGRESS"
}

if [ "$changed" = yes ] || ! registered; then
  pid="$(pidof dockerd || true)"
  if [ -z "$pid" ]; then
    echo "install-gvisor: dockerd is not running; start it to load the runtimes" >&2
    exit 1
  fi
  echo "install-gvisor: reloading dockerd ($pid) with SIGHUP"
  kill -HUP $pid
  for _ in $(seq 1 60); do
    registered && break
    sleep 0.5
  done
  registered || { echo "install-gvisor: dockerd did not load $RUNTIME_NONE/$RUNTIME_EGRESS" >&2; exit 1; }
fi

# A tiny local image for the smoke test (no registry is reachable): the host's static busybox.
if ! docker image inspect "$SMOKE_IMAGE" >/dev/null 2>&1; then
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp /bin/busybox "$ctx/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' >"$ctx/Dockerfile"
  docker build -q -t "$SMOKE_IMAGE" "$ctx" >/dev/null 2>&1 || { echo "install-gvisor: cannot build $SMOKE_IMAGE" >&2; exit 1; }
fi

# Smoke test: the hardened shape the worker uses, under each runtime.
smoke() {
  local runtime="$1" network="$2" out
  out=$(timeout 60 docker run --rm --runtime="$runtime" --network="$network" \
    --read-only --cap-drop ALL --security-opt no-new-privileges:true --user 65534:65534 \
    --init --pids-limit 4096 --memory 256m --tmpfs /tmp:rw,exec,size=16m \
    "$SMOKE_IMAGE" sh -c '[ -e /proc/sentry-meminfo ] && echo gVisor; echo ok') || {
    echo "install-gvisor: smoke test under $runtime failed" >&2
    return 1
  }
  case "$out" in
    *gVisor*ok) echo "install-gvisor: $runtime ok" ;;
    *) echo "install-gvisor: $runtime did not run gVisor: $out" >&2; return 1 ;;
  esac
}
smoke "$RUNTIME_NONE" none
smoke "$RUNTIME_EGRESS" bridge
echo "install-gvisor: ok ($(runsc --version 2>/dev/null | head -1))"
