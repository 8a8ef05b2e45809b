#!/usr/bin/env bash
# Stops the Temporal dev server and Redis that scripts/up.sh started.
set -uo pipefail
cd "$(dirname "$0")/.."
for svc in temporal redis; do
  if [ -f ".run/$svc.pid" ]; then
    kill "$(cat ".run/$svc.pid")" 2>/dev/null && echo "stopped $svc"
    rm -f ".run/$svc.pid"
  fi
done
