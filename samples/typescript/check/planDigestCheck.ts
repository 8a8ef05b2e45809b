// Reads a JSON array of `deployWithApproval` inputs on stdin and prints, one per line, the
// planDigest `planDigest.ts` computes for each: workflows-spec's typescript_plan_digest test runs it
// under Deno and compares with DeploymentPlan::of. Not part of the workflow bundle.
import { deploymentPlan, type PlanInput } from '../planDigest.ts';

const inputs: PlanInput[] = JSON.parse(await new Response(Deno.stdin.readable).text());
for (const input of inputs) {
  console.log(deploymentPlan(input).planDigest);
}
