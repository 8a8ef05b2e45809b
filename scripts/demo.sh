#!/usr/bin/env bash
# The demo: build, test and deploy samples/demo-app through the worker, with a human approval.
#
#   bash scripts/up.sh            # in one shell: services + worker (full image by default)
#   bash scripts/demo.sh          # in another: starts the workflow, prints the plan, waits
#   bash scripts/demo.sh --approve ops-lead   # approves the plan itself from the CLI
#
# It starts the demo platform (samples/demo-platform/server.py, a tiny static host on
# 127.0.0.1:$DEMO_PLATFORM_PORT) unless it already runs, starts `buildAndDeployWorkflow` with the
# sample's files (npm install, npm test, npm run build in sandboxes; the deploy uploads dist/ to
# the platform through the egress proxy, as `demo-platform.local`), prints the plan awaiting
# approval and how to approve it from the CLI or the Web UI, then waits for the result and shows
# the deployed page. Exit 0 when the page is served, 1 when the workflow failed or was rejected.
#
# Environment: TEMPORAL_ADDRESS (127.0.0.1:7233), AE_TASK_QUEUE (autonomous-enterprise),
# DEMO_PLATFORM_PORT (8787), DEMO_TIMEOUT_SECS (900).
set -euo pipefail
cd "$(dirname "$0")/.."

approver=""
if [ "${1:-}" = "--approve" ]; then approver="${2:?--approve needs a name}"; fi
address="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
queue="${AE_TASK_QUEUE:-autonomous-enterprise}"
port="${DEMO_PLATFORM_PORT:-8787}"
timeout_secs="${DEMO_TIMEOUT_SECS:-900}"
token="${DEMO_PLATFORM_TOKEN:-demo-deploy-token}"
state="${DEMO_STATE_DIR:-.run}"
mkdir -p "$state"
t() { temporal --address "$address" "$@"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
if ! port_open 127.0.0.1 "$port"; then
  echo "demo: starting the demo platform on 127.0.0.1:$port"
  DEMO_PLATFORM_TOKEN="$token" nohup python3 samples/demo-platform/server.py --port "$port" \
    --dir "$state/demo-platform" >"$state/demo-platform.log" 2>&1 &
  for _ in $(seq 1 50); do port_open 127.0.0.1 "$port" && break; sleep 0.2; done
fi

stamp="$(date +%Y%m%d-%H%M%S)-$$"
workflow_id="demo-$stamp"
input="$state/demo-input-$stamp.json"
# The workflow input: the sample's files and the demo platform as deploy target. The token is
# an env value of the deploy: the plan shows only its name and hash, outputs show it redacted.
python3 - "$input" "$stamp" "$port" "$token" <<'PY'
import json, os, sys
out, stamp, port, token = sys.argv[1:]
root = "samples/demo-app"
files = []
for dirpath, _, names in os.walk(root):
    for name in sorted(names):
        path = os.path.join(dirpath, name)
        if "/dist/" in path or "/node_modules/" in path:
            continue
        files.append({"path": os.path.relpath(path, root), "content": open(path).read()})
json.dump({
    "runId": f"demo-{stamp}",
    "deployPlatform": "demo",
    "projectPath": root,
    "workspaceFiles": sorted(files, key=lambda f: f["path"]),
    "deployCommand": "npm run deploy",
    "deployDomains": ["demo-platform.local"],
    "deployEnv": {
        "DEMO_PLATFORM_URL": f"http://demo-platform.local:{port}",
        "DEMO_PLATFORM_TOKEN": token,
        "DEMO_SITE": f"demo-{stamp}",
    },
    "approvalTimeoutSecs": 3600,
}, open(out, "w"))
PY

echo "demo: starting buildAndDeployWorkflow $workflow_id on $queue (npm install, npm test, npm run build)"
t workflow start --task-queue "$queue" --type buildAndDeployWorkflow \
  --workflow-id "$workflow_id" --input-file "$input" >/dev/null

closed() {
  t workflow describe --workflow-id "$workflow_id" --output json 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["workflowExecutionInfo"]["status"]; sys.exit(0 if s!="WORKFLOW_EXECUTION_STATUS_RUNNING" else 1)'
}
plan=""
deadline=$((SECONDS + timeout_secs))
while [ $SECONDS -lt $deadline ]; do
  t workflow query --workflow-id "$workflow_id" --name pendingApproval --output json \
    >"$state/demo-query.json" 2>/dev/null || true
  plan="$(python3 - "$state/demo-query.json" <<'PY' || true
import json, sys
try:
    r = json.load(open(sys.argv[1])).get("queryResult")
except ValueError:
    r = None
r = r[0] if isinstance(r, list) and r else r
print(json.dumps(r) if isinstance(r, dict) and r.get("planDigest") else "")
PY
)"
  [ -n "$plan" ] && break
  if closed; then break; fi
  sleep 1
done
if [ -z "$plan" ]; then
  echo "demo: the workflow ended (or timed out) before asking for approval:" >&2
  t workflow describe --workflow-id "$workflow_id" >&2 || true
  exit 1
fi
digest="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["planDigest"])' "$plan")"
echo "demo: install, test and build passed. The plan awaiting approval:"
python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1]), indent=2))' "$plan" |
  grep -v '"content"'
cat <<EOF

Approve it (or reject it) in one of these ways:
  CLI:    temporal workflow signal --workflow-id $workflow_id --name approveDeployment \\
            --input '{"approver":"<you>","planDigest":"$digest","comment":"ship it"}'
          (with approver keys configured: ae-worker approve --workflow-id $workflow_id \\
            --approver <you> --key <you>.key)
  Web UI: http://127.0.0.1:8233/namespaces/default/workflows/$workflow_id
          Queries -> pendingApproval to read the plan, then "Send a Signal":
          approveDeployment {"approver":"<you>","planDigest":"$digest"}
  Reject: temporal workflow signal --workflow-id $workflow_id --name rejectDeployment \\
            --input '{"approver":"<you>","reason":"not today"}'
EOF
if [ -n "$approver" ]; then
  echo "demo: approving as $approver"
  t workflow signal --workflow-id "$workflow_id" --name approveDeployment \
    --input "{\"approver\":\"$approver\",\"planDigest\":\"$digest\",\"comment\":\"approved by scripts/demo.sh\"}" >/dev/null
else
  echo "demo: waiting for a decision (up to ${timeout_secs}s)..."
fi

result="$(t workflow result --workflow-id "$workflow_id" --output json 2>&1 || true)"
echo "$result" | tail -n 30
page="http://127.0.0.1:$port/sites/demo-$stamp/index.html"
if ! echo "$result" | grep -q '"success": *true' || ! curl -fsS -o /dev/null "$page"; then
  echo "demo: not deployed (see the result above)" >&2
  exit 1
fi
echo "demo: deployed. The platform serves $page:"
curl -fsS "$page"
