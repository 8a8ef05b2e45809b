// `buildAndDeployWorkflow` with the Temporal TypeScript SDK: the same flow as the Rust reference
// workflow (workflows-spec/src/workflow.rs). Install, test and build run as ONE `safeExecuteBatch`;
// the deployment plan is exposed through the `pendingApproval` query; the workflow waits for an
// `approveDeployment` or `rejectDeployment` signal (at most `approvalTimeoutSecs`, default 24 h);
// an approval is passed to `deployWithApproval`, which re-verifies it against this workflow's
// signal history.
//
// The activities run on the Rust worker (task queue `autonomous-enterprise`). Their inputs refuse
// unknown fields: send only the keys below. Optional keys left `undefined` are dropped by the JSON
// payload converter, so they never reach the worker as null.
// Shapes: workflows-spec/schema/contract.schema.json.

import {
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import { deploymentPlan, type DeploymentPlan, type WorkspaceFile } from './planDigest';

export type { DeploymentPlan, WorkspaceFile } from './planDigest';

// ---- Contract types (camelCase JSON) ------------------------------------------------------------

/** One command of a batch: a plain string, or an object with its own timeout (ms). */
export type BatchCommand = string | { command: string; timeout?: number };

export interface SafeExecuteBatchInput {
  runId: string;
  commands: BatchCommand[];
  workspaceFiles?: WorkspaceFile[];
  /** Default per-command timeout, ms (60000). */
  timeout?: number;
  allowedDomains?: string[];
  env?: Record<string, string>;
  /** Default true. */
  stopOnError?: boolean;
}

export interface ExecutionResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  timedOut: boolean;
  cost: number;
  budgetRemaining: number;
  durationMs: number;
  stdoutTruncated?: boolean;
  stderrTruncated?: boolean;
  stdoutBytes?: number;
  stderrBytes?: number;
  redactions?: number;
  oomKilled?: boolean;
}

export interface BatchResult {
  results: ExecutionResult[];
  succeeded: boolean;
  failedIndex?: number;
  totalCost: number;
  budgetRemaining: number;
  durationMs: number;
}

export interface Approval {
  approver: string;
  comment?: string;
}

export interface DeployWithApprovalInput {
  runId: string;
  platform: string;
  command: string;
  workspaceFiles?: WorkspaceFile[];
  env?: Record<string, string>;
  /** Default per platform, e.g. api.vercel.com. */
  allowedDomains?: string[];
  approval?: Approval;
  /** Milliseconds, default 300000. */
  timeout?: number;
  /** Default: the worker's image; others must be on its allowlist. */
  image?: string;
}

export interface DeploymentResult {
  success: boolean;
  url?: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  cost: number;
  budgetRemaining: number;
  approvedBy: string;
  approverIdentity: string;
  durationMs: number;
}

/** Payload of `approveDeployment`. */
export interface ApproveDeployment {
  approver: string;
  comment?: string;
  /** The digest of the plan approved (from `pendingApproval`). Required: without it the deploy
   * is ApprovalInvalid. */
  planDigest?: string;
  /** Base64 Ed25519 over `ae-approval-v2\n<namespace>\n<workflowId>\n<runId>\n<planDigest>\n
   * <approver>\n<expiresAt>` (required when the worker has approver keys). */
  signature?: string;
  /** Unix seconds; required with a signature. */
  expiresAt?: number;
}

/** Payload of `rejectDeployment`. */
export interface RejectDeployment {
  approver: string;
  reason?: string;
}

export interface BuildAndDeployInput {
  runId: string;
  /** `vercel`, `netlify`, `fly`, or any platform the deploy command targets. */
  deployPlatform: string;
  projectPath?: string;
  workspaceFiles?: WorkspaceFile[];
  /** Default `npm install`. */
  installCommand?: string;
  /** Default `npm test`. */
  testCommand?: string;
  /** Default `npm run build`. */
  buildCommand?: string;
  /** Default `<platform> deploy --prod`. */
  deployCommand?: string;
  deployEnv?: Record<string, string>;
  /** Hosts the deploy may reach; default per platform. */
  deployDomains?: string[];
  /** Default 86400 (24 h). */
  approvalTimeoutSecs?: number;
}

export interface BuildAndDeployResult {
  success: boolean;
  url?: string;
  totalCost: number;
  budgetRemaining: number;
  approvedBy: string;
  approverIdentity: string;
}

/** The activities of the Rust worker, by name. */
type Activities = {
  safeExecuteBatch(input: SafeExecuteBatchInput): Promise<BatchResult>;
  deployWithApproval(input: DeployWithApprovalInput): Promise<DeploymentResult>;
};

// ---- Signals, query, activity options ------------------------------------------------------------

export const approveDeployment = defineSignal<[ApproveDeployment]>('approveDeployment');
export const rejectDeployment = defineSignal<[RejectDeployment]>('rejectDeployment');
export const pendingApproval = defineQuery<DeploymentPlan | null>('pendingApproval');

const ACTIVITY_TASK_QUEUE = 'autonomous-enterprise';
const COMMAND_TIMEOUT_MS = 300_000;
const DEFAULT_APPROVAL_TIMEOUT_SECS = 24 * 60 * 60;

const { safeExecuteBatch } = proxyActivities<Activities>({
  taskQueue: ACTIVITY_TASK_QUEUE,
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
});

const { deployWithApproval } = proxyActivities<Activities>({
  taskQueue: ACTIVITY_TASK_QUEUE,
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
});

type Decision = { kind: 'approved'; signal: ApproveDeployment } | { kind: 'rejected'; signal: RejectDeployment };

// ---- The workflow -------------------------------------------------------------------------------

export async function buildAndDeployWorkflow(input: BuildAndDeployInput): Promise<BuildAndDeployResult> {
  let pending: DeploymentPlan | null = null;
  let decision: Decision | null = null; // the latest decision wins

  setHandler(approveDeployment, (signal: ApproveDeployment) => {
    decision = { kind: 'approved', signal };
  });
  setHandler(rejectDeployment, (signal: RejectDeployment) => {
    decision = { kind: 'rejected', signal };
  });
  setHandler(pendingApproval, () => pending);

  const workspaceFiles = input.workspaceFiles ?? [];
  const steps: Array<[string, string]> = [
    ['install', input.installCommand ?? 'npm install'],
    ['test', input.testCommand ?? 'npm test'],
    ['build', input.buildCommand ?? 'npm run build'],
  ];

  const batch = await safeExecuteBatch({
    runId: input.runId,
    commands: steps.map(([, command]) => ({ command, timeout: COMMAND_TIMEOUT_MS })),
    workspaceFiles: workspaceFiles.length > 0 ? workspaceFiles : undefined,
    stopOnError: true,
  });
  if (!batch.succeeded) {
    const i = batch.failedIndex ?? 0;
    const step = i < steps.length ? steps[i][0] : 'build';
    const stderr = i < batch.results.length ? batch.results[i].stderr : '';
    // The last 2000 characters (code points, as Rust's chars()).
    const tail = Array.from(stderr).slice(-2000).join('');
    throw ApplicationFailure.nonRetryable(`${step} failed: ${tail}`, 'BuildFailed');
  }

  const deployEnv = input.deployEnv ?? {};
  const deploy: DeployWithApprovalInput = {
    runId: input.runId,
    platform: input.deployPlatform,
    command: input.deployCommand ?? `${input.deployPlatform} deploy --prod`,
    workspaceFiles: workspaceFiles.length > 0 ? workspaceFiles : undefined,
    env: Object.keys(deployEnv).length > 0 ? deployEnv : undefined,
    allowedDomains: input.deployDomains,
    timeout: COMMAND_TIMEOUT_MS,
  };
  // DeploymentPlan::of: the worker computes the same plan and digest from the same input.
  pending = deploymentPlan(deploy);

  const waitSecs = input.approvalTimeoutSecs ?? DEFAULT_APPROVAL_TIMEOUT_SECS;
  await condition(() => decision !== null, waitSecs * 1000); // false on timeout
  pending = null;

  // `decision` is assigned in the handlers; TypeScript's narrowing does not see that.
  const decided = decision as Decision | null;
  if (decided === null) {
    throw ApplicationFailure.nonRetryable(
      `no approval within ${waitSecs} s; nothing was deployed`,
      'ApprovalTimeout'
    );
  }
  if (decided.kind === 'rejected') {
    const { approver, reason } = decided.signal;
    throw ApplicationFailure.nonRetryable(
      `deployment rejected by ${approver}: ${reason ?? ''}`,
      'DeploymentRejected'
    );
  }

  const { approver, comment } = decided.signal;
  const result = await deployWithApproval({ ...deploy, approval: { approver, comment: comment ?? undefined } });
  return {
    success: result.success,
    url: result.url ?? undefined,
    totalCost: batch.totalCost + result.cost,
    budgetRemaining: result.budgetRemaining,
    approvedBy: result.approvedBy,
    approverIdentity: result.approverIdentity,
  };
}
