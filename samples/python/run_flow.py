#!/usr/bin/env python3
"""Drive one `buildAndDeployWorkflow` end to end with the Python sample workflow.

    python3 samples/python/run_flow.py --address HOST:PORT --task-queue QUEUE \\
        --workflow-id ID --input JSON [--approve APPROVER | --reject APPROVER] \\
        [--comment TEXT] [--timeout-secs N] [--namespace NS]

Hosts the Python workflow on QUEUE in-process (no activities: those run on the Rust worker,
queue `autonomous-enterprise`), starts the workflow, polls `pendingApproval` every 200 ms and
prints `PLAN <json>` once it is non-null, sends the decision, and prints as its last stdout line
`RESULT <json>` (exit 0) or `FAILURE {"type": ..., "message": ...}` (exit 1). If the workflow
ends before a plan appears (e.g. BuildFailed), no PLAN line is printed. With neither --approve
nor --reject it only waits (e.g. for ApprovalTimeout). Past --timeout-secs (default 180): a
message on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_and_deploy import (  # noqa: E402
    APPROVE_SIGNAL,
    PENDING_QUERY,
    REJECT_SIGNAL,
    WORKFLOW_NAME,
    BuildAndDeployWorkflow,
)


def emit(tag: str, value: object) -> None:
    print(f"{tag} {json.dumps(value, ensure_ascii=False)}", flush=True)


def failure_of(err: WorkflowFailureError) -> dict:
    """The first application error in the cause chain (e.g. ActivityError -> PolicyViolation)."""
    cause = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if cause is None:  # timed out, terminated, cancelled: no application error
        cause = err.cause
        return {"type": type(cause).__name__, "message": str(cause)}
    return {"type": cause.type, "message": cause.message}


async def wait_for_plan(handle, result: asyncio.Task):
    """Poll the query until it returns a plan, or None once the workflow has ended."""
    while not result.done():
        try:
            plan = await handle.query(PENDING_QUERY)
            if plan is not None:
                return plan
        except RPCError:
            pass  # e.g. the first workflow task has not run yet
        await asyncio.sleep(0.2)
    return None


async def run(args: argparse.Namespace) -> int:
    client = await Client.connect(args.address, namespace=args.namespace)
    async with Worker(client, task_queue=args.task_queue, workflows=[BuildAndDeployWorkflow]):
        handle = await client.start_workflow(
            WORKFLOW_NAME, json.loads(args.input), id=args.workflow_id, task_queue=args.task_queue
        )
        result = asyncio.ensure_future(handle.result())
        plan = await wait_for_plan(handle, result)
        if plan is not None:
            emit("PLAN", plan)
            if args.approve is not None:
                # An approval names the digest of the plan it approves.
                approval = {"approver": args.approve, "planDigest": plan["planDigest"]}
                if args.comment is not None:
                    approval["comment"] = args.comment
                await handle.signal(APPROVE_SIGNAL, approval)
            elif args.reject is not None:
                reason = args.comment if args.comment is not None else "rejected"
                await handle.signal(REJECT_SIGNAL, {"approver": args.reject, "reason": reason})
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
    p.add_argument("--task-queue", required=True, help="queue of the Python workflow")
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--input", required=True, help="BuildAndDeployInput as JSON")
    decision = p.add_mutually_exclusive_group()
    decision.add_argument("--approve", metavar="APPROVER")
    decision.add_argument("--reject", metavar="APPROVER")
    p.add_argument("--comment", help="approval comment, or rejection reason")
    p.add_argument("--timeout-secs", type=float, default=180)
    args = p.parse_args()
    try:
        return asyncio.run(asyncio.wait_for(run(args), args.timeout_secs))
    except asyncio.TimeoutError:
        print(f"run_flow: no result within {args.timeout_secs:g} s", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: with temporalio 1.35 the SDK core's threads can still touch
    # the GIL while Python tears down, which aborts the process (SIGABRT, "PyGILState_Release")
    # after the result was already printed. Everything is flushed and the worker has shut down.
    os._exit(code)
