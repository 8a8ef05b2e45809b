#!/bin/sh
# Uploads dist/ to the demo platform (samples/demo-platform/server.py) through the worker's
# egress proxy; the deploy sandbox may reach only the hosts its approved plan lists.
set -eu
platform="${DEMO_PLATFORM_URL:-http://demo-platform.local:8787}"
site="${DEMO_SITE:-ae-demo}"
for f in dist/*; do
  curl -fsS -T "$f" -H "Authorization: Bearer ${DEMO_PLATFORM_TOKEN:-}" \
    "$platform/sites/$site/$(basename "$f")" >/dev/null
done
echo "Production: $platform/sites/$site/index.html"
