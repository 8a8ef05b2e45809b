#!/usr/bin/env python3
"""Start and steer one `progressiveDeployWorkflow` (hosted by the Rust worker) from Python.

    python3 samples/python/progressive_deploy.py --address HOST:PORT --workflow-id ID \\
        --input JSON [--task-queue autonomous-enterprise] [--namespace default] \\
        [--approve-canary APPROVER] [--approve-promotion APPROVER | --reject-promotion APPROVER] \\
        [--abort-after-canary APPROVER] [--comment TEXT] [--timeout-secs N]

The workflow (workflows-spec/src/progressive/workflow.rs) builds in one `safeExecuteBatch`,
publishes the canary plan through `pendingApproval`, deploys the canary with
`deployWithApproval`, health-checks it every `checkIntervalSecs` for `monitorSecs` (rolling back
by itself on a breach), publishes the promotion plan with the canary's measurements, and
promotes or rolls back. This starter prints `STATUS <json>` (the `deploymentStatus` query)
whenever the phase or the number of measurements changes and `PLAN <json>` for each stage
awaiting approval, decides as told, and prints as its last line `RESULT <json>` (exit 0) or
`FAILURE {"type": ..., "message": ...}` (exit 1); past --timeout-secs, exit 2.

Before approving, it checks what it approves: the plan's `phase` is the stage it means to
approve (an approval names a digest that binds the stage, so a canary approval can never
promote), and the digest it names is recomputed here from the plan shown (`plan_digest`), so a
plan whose fields do not match its digest is refused rather than approved.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from typing import Any, Dict

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

WORKFLOW_NAME = "progressiveDeployWorkflow"
TASK_QUEUE = "autonomous-enterprise"
APPROVE_SIGNAL = "approveDeployment"
REJECT_SIGNAL = "rejectDeployment"
ABORT_SIGNAL = "abortDeployment"
PENDING_QUERY = "pendingApproval"
STATUS_QUERY = "deploymentStatus"
ENDED = {"Promoted", "RolledBack", "Aborted", "Failed"}


def plan_digest(plan: Dict[str, Any]) -> str:
    """The digest of the plan shown, as deploy.rs computes it: sha256 of the compact, key-sorted
    JSON of allowedDomains, command, env (name, sha256), files (path, sha256), image, platform,
    profile, runId, timeout, plus phase, healthCheckCommand and rollbackCommand when present."""
    canonical: Dict[str, Any] = {
        "allowedDomains": list(plan["allowedDomains"]),
        "command": plan["command"],
        "env": [{"name": e["name"], "sha256": e["sha256"]} for e in plan.get("env", [])],
        "files": [{"path": f["path"], "sha256": f["sha256"]} for f in plan["files"]],
        "image": plan.get("image"),
        "platform": plan["platform"],
        "profile": plan["profile"],
        "runId": plan["runId"],
        "timeout": plan["timeout"],
    }
    for key in ("phase", "healthCheckCommand", "rollbackCommand"):
        if plan.get(key) is not None:
            canonical[key] = plan[key]
    text = json.dumps(canonical, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def emit(tag: str, value: object) -> None:
    print(f"{tag} {json.dumps(value, ensure_ascii=False)}", flush=True)


def failure_of(err: WorkflowFailureError) -> dict:
    cause = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if cause is None:
        return {"type": type(err.cause).__name__, "message": str(err.cause)}
    return {"type": cause.type, "message": cause.message}


async def approve(handle, stage: str, pending: Dict[str, Any], approver: str, comment) -> None:
    if pending.get("phase") != stage:
        raise SystemExit(f"refusing: the pending plan is for {pending.get('phase')!r}, not {stage!r}")
    if plan_digest(pending) != pending["planDigest"]:
        raise SystemExit("refusing: the plan shown does not match its planDigest")
    body = {"approver": approver, "planDigest": pending["planDigest"]}
    if comment is not None:
        body["comment"] = comment
    await handle.signal(APPROVE_SIGNAL, body)


async def steer(handle, result: asyncio.Task, args: argparse.Namespace) -> None:
    """Watch the status; decide each stage once, as the flags say."""
    seen = None
    decided = set()
    while not result.done():
        try:
            status = await handle.query(STATUS_QUERY)
            pending = await handle.query(PENDING_QUERY)
        except RPCError:  # the first workflow task has not run yet
            await asyncio.sleep(0.3)
            continue
        key = (status["phase"], len(status["measurements"]))
        if key != seen:
            seen = key
            emit("STATUS", status)
        stage = (pending or {}).get("phase")
        if stage and stage not in decided:
            decided.add(stage)
            emit("PLAN", pending)
            if stage == "canary" and args.approve_canary:
                await approve(handle, "canary", pending, args.approve_canary, args.comment)
            elif stage == "promote" and args.approve_promotion:
                await approve(handle, "promote", pending, args.approve_promotion, args.comment)
            elif stage == "promote" and args.reject_promotion:
                reason = args.comment or "rejected"
                await handle.signal(
                    REJECT_SIGNAL, {"approver": args.reject_promotion, "reason": reason}
                )
        if args.abort_after_canary and status["phase"] == "Monitoring" and "abort" not in decided:
            decided.add("abort")
            reason = args.comment or "aborted"
            await handle.signal(
                ABORT_SIGNAL, {"approver": args.abort_after_canary, "reason": reason}
            )
        if status["phase"] in ENDED:
            return
        await asyncio.sleep(0.3)


async def run(args: argparse.Namespace) -> int:
    client = await Client.connect(args.address, namespace=args.namespace)
    handle = await client.start_workflow(
        WORKFLOW_NAME, json.loads(args.input), id=args.workflow_id, task_queue=args.task_queue
    )
    result = asyncio.ensure_future(handle.result())
    await steer(handle, result, args)
    try:
        emit("RESULT", await result)
        return 0
    except WorkflowFailureError as err:
        emit("FAILURE", failure_of(err))
        return 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True, help="Temporal frontend, HOST:PORT")
    p.add_argument("--namespace", default="default")
    p.add_argument("--task-queue", default=TASK_QUEUE, help="the Rust worker's queue")
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--input", required=True, help="ProgressiveDeployInput as JSON")
    p.add_argument("--approve-canary", metavar="APPROVER")
    promotion = p.add_mutually_exclusive_group()
    promotion.add_argument("--approve-promotion", metavar="APPROVER")
    promotion.add_argument("--reject-promotion", metavar="APPROVER")
    p.add_argument("--abort-after-canary", metavar="APPROVER")
    p.add_argument("--comment", help="approval comment, rejection or abort reason")
    p.add_argument("--timeout-secs", type=float, default=300)
    args = p.parse_args()
    try:
        return asyncio.run(asyncio.wait_for(run(args), args.timeout_secs))
    except asyncio.TimeoutError:
        print(f"progressive_deploy: no result within {args.timeout_secs:g} s", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # As in run_flow.py: skip interpreter finalization (temporalio 1.35 core threads).
    os._exit(code)
