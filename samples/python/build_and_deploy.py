"""`buildAndDeployWorkflow` with the official Temporal Python SDK.

The same flow as the Rust reference workflow (workflows-spec/src/workflow.rs): install, test and
build in ONE session (`openSandbox`, then three `safeExecuteCode` with its `sandboxId` on the
session's own task queue, then `closeSandbox` on every path), publish the deployment plan through the `pendingApproval` query,
wait for an `approveDeployment` or `rejectDeployment` signal (at most `approvalTimeoutSecs`,
default 24 h), then `deployWithApproval`.

The activities run on the Rust worker (task queue `autonomous-enterprise`) and are called by
name with plain dicts whose camelCase keys match workflows-spec/schema/contract.schema.json.
The activity inputs refuse unknown fields, so only known keys are sent and optional keys are
omitted rather than sent as null.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any, Dict, List, Optional

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

ACTIVITY_TASK_QUEUE = "autonomous-enterprise"
WORKFLOW_NAME = "buildAndDeployWorkflow"
APPROVE_SIGNAL = "approveDeployment"
REJECT_SIGNAL = "rejectDeployment"
PENDING_QUERY = "pendingApproval"

# Copied from PRODUCTION_WARNING in workflows-spec/src/deploy.rs.
PRODUCTION_WARNING = (
    "WARNING: You are about to deploy to PRODUCTION. This integration will access real customer "
    "data, make real API calls that count against your quota, and potentially modify data (if "
    "write operations are enabled)."
)

DEFAULT_APPROVAL_TIMEOUT_SECS = 24 * 60 * 60
COMMAND_TIMEOUT_MS = 300_000

_DEFAULT_DOMAINS = {
    "vercel": ["api.vercel.com", "vercel.com"],
    "netlify": ["api.netlify.com", "app.netlify.com"],
    "fly": ["api.fly.io"],
}


def default_domains(platform: str) -> List[str]:
    """The hosts a platform's CLI needs (deploy.rs `default_domains`)."""
    return list(_DEFAULT_DOMAINS.get(platform, []))


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


DEFAULT_DEPLOY_TIMEOUT_MS = 300_000
DEPLOY_PROFILE = "production"


def canonical_plan_json(plan: Dict[str, Any]) -> str:
    """The compact JSON the digest covers, byte-identical to serde_json's output in deploy.rs.

    Everything that changes what a deploy does: allowedDomains, command, env (name and SHA-256
    of each value, sorted by name; never the value), files (path and SHA-256), image (null = the
    worker's default), platform, profile, runId, timeout. Keys sorted, no spaces, non-ASCII kept.
    """
    canonical = {
        "allowedDomains": list(plan["allowedDomains"]),
        "command": plan["command"],
        "env": [{"name": e["name"], "sha256": e["sha256"]} for e in plan["env"]],
        "files": [{"path": f["path"], "sha256": f["sha256"]} for f in plan["files"]],
        "image": plan["image"],
        "platform": plan["platform"],
        "profile": plan["profile"],
        "runId": plan["runId"],
        "timeout": plan["timeout"],
    }
    return json.dumps(canonical, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def plan_digest(plan: Dict[str, Any]) -> str:
    """`DeploymentPlan::recompute_digest`: the digest of the fields a plan shows."""
    return _sha256_hex(canonical_plan_json(plan).encode("utf-8"))


def plan_of(deploy_input: Dict[str, Any]) -> Dict[str, Any]:
    """`DeploymentPlan::of`: the plan of a `deployWithApproval` input (domains defaulted per
    platform, timeout to 300000 ms), with its digest."""
    domains = deploy_input.get("allowedDomains")
    if domains is None:
        domains = default_domains(deploy_input["platform"])
    env = deploy_input.get("env") or {}
    plan: Dict[str, Any] = {
        "runId": deploy_input["runId"],
        "platform": deploy_input["platform"],
        "command": deploy_input["command"],
        "allowedDomains": list(domains),
        "files": [
            {"path": f["path"], "sha256": _sha256_hex(f["content"].encode("utf-8"))}
            for f in deploy_input.get("workspaceFiles") or []
        ],
        # Sorted by name, as Rust's BTreeMap (by UTF-8 bytes, which code-point order matches).
        "env": [
            {"name": name, "sha256": _sha256_hex(env[name].encode("utf-8"))}
            for name in sorted(env)
        ],
        "image": deploy_input.get("image"),
        "timeout": _or(deploy_input.get("timeout"), DEFAULT_DEPLOY_TIMEOUT_MS),
        "profile": DEPLOY_PROFILE,
    }
    plan["planDigest"] = plan_digest(plan)
    plan["warning"] = PRODUCTION_WARNING
    return plan


def _or(value: Optional[Any], default: Any) -> Any:
    """Rust's `Option::unwrap_or`: only a missing or null value takes the default."""
    return default if value is None else value


def _activity_options(minutes: int) -> Dict[str, Any]:
    return {
        "task_queue": ACTIVITY_TASK_QUEUE,
        "start_to_close_timeout": timedelta(minutes=minutes),
        "heartbeat_timeout": timedelta(seconds=30),
        "retry_policy": RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
    }


# A session's activities go to the task queue of the worker holding its sandbox. If that worker
# died nobody polls the queue: the schedule-to-start timeout (never retried) ends the call then.
SESSION_SCHEDULE_TO_START = timedelta(seconds=30)
SESSION_IDLE_TIMEOUT_MS = 15 * 60 * 1000


def _session_options(session: Dict[str, Any], minutes: int) -> Dict[str, Any]:
    return {
        **_activity_options(minutes),
        "task_queue": session["taskQueue"],
        "schedule_to_start_timeout": SESSION_SCHEDULE_TO_START,
    }


async def _build_in_session(
    run_id: str, workspace_files: List[Dict[str, Any]], steps: List[tuple]
) -> float:
    """Install, test and build in one session; returns their cost. Raises BuildFailed at the
    first step that exits non-zero. The session is closed on every path (closing is
    idempotent; should the close itself fail, the session's idle timeout reaps it)."""
    open_input: Dict[str, Any] = {"runId": run_id, "idleTimeoutMs": SESSION_IDLE_TIMEOUT_MS}
    if workspace_files:
        open_input["workspaceFiles"] = workspace_files
    session = await workflow.execute_activity(
        "openSandbox", open_input, **_activity_options(5)
    )
    cost = 0.0
    try:
        for name, command in steps:
            result = await workflow.execute_activity(
                "safeExecuteCode",
                {
                    "runId": run_id,
                    "command": command,
                    "timeout": COMMAND_TIMEOUT_MS,
                    "sandboxId": session["sandboxId"],
                },
                **_session_options(session, 6),
            )
            cost += result["cost"]
            if result["exitCode"] != 0 or result["timedOut"]:
                raise _fail("BuildFailed", f"{name} failed: {result['stderr'][-2000:]}")
    finally:
        try:
            await workflow.execute_activity(
                "closeSandbox",
                {"sandboxId": session["sandboxId"]},
                **_session_options(session, 1),
            )
        except Exception:  # noqa: BLE001 - the idle timeout reaps it; the build's outcome counts
            workflow.logger.warning("closeSandbox failed; the session's idle timeout reaps it")
    return cost


def _fail(kind: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn(name=WORKFLOW_NAME)
class BuildAndDeployWorkflow:
    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None
        # ("approved" | "rejected", signal payload); the latest decision wins.
        self._decision: Optional[tuple] = None

    @workflow.run
    async def run(self, input: Dict[str, Any]) -> Dict[str, Any]:
        run_id = input["runId"]
        platform = input["deployPlatform"]
        workspace_files = input.get("workspaceFiles") or []
        steps = [
            ("install", _or(input.get("installCommand"), "npm install")),
            ("test", _or(input.get("testCommand"), "npm test")),
            ("build", _or(input.get("buildCommand"), "npm run build")),
        ]

        build_cost = await _build_in_session(run_id, workspace_files, steps)

        deploy: Dict[str, Any] = {
            "runId": run_id,
            "platform": platform,
            "command": _or(input.get("deployCommand"), f"{platform} deploy --prod"),
            "timeout": COMMAND_TIMEOUT_MS,
        }
        if workspace_files:
            deploy["workspaceFiles"] = workspace_files
        if input.get("deployEnv"):
            deploy["env"] = input["deployEnv"]
        if input.get("deployDomains") is not None:
            deploy["allowedDomains"] = input["deployDomains"]
        self._pending = plan_of(deploy)

        wait = _or(input.get("approvalTimeoutSecs"), DEFAULT_APPROVAL_TIMEOUT_SECS)
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None, timeout=timedelta(seconds=wait)
            )
        except asyncio.TimeoutError:
            pass
        self._pending = None

        if self._decision is None:
            raise _fail("ApprovalTimeout", f"no approval within {wait} s; nothing was deployed")
        kind, payload = self._decision
        if kind == "rejected":
            raise _fail(
                "DeploymentRejected",
                f"deployment rejected by {payload['approver']}: {payload.get('reason', '')}",
            )

        approval = {"approver": payload["approver"]}
        if payload.get("comment") is not None:
            approval["comment"] = payload["comment"]
        result = await workflow.execute_activity(
            "deployWithApproval", {**deploy, "approval": approval}, **_activity_options(10)
        )

        out: Dict[str, Any] = {"success": result["success"]}
        if result.get("url") is not None:
            out["url"] = result["url"]
        out["totalCost"] = round(build_cost + result["cost"], 6)
        out["budgetRemaining"] = result["budgetRemaining"]
        out["approvedBy"] = result["approvedBy"]
        out["approverIdentity"] = result["approverIdentity"]
        return out

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve_deployment(self, approval: Dict[str, Any]) -> None:
        """`{approver, comment?, planDigest, signature?, expiresAt?}`. The worker, not this
        workflow, judges it: it must come from a client, name this plan's planDigest and not
        have been used by another deployment, else the deploy is ApprovalInvalid."""
        self._decision = ("approved", approval)

    @workflow.signal(name=REJECT_SIGNAL)
    def reject_deployment(self, rejection: Dict[str, Any]) -> None:
        """`{approver, reason}`."""
        self._decision = ("rejected", rejection)

    @workflow.query(name=PENDING_QUERY)
    def pending_approval(self) -> Optional[Dict[str, Any]]:
        """The plan awaiting approval, or None (null)."""
        return self._pending
