// The deployment plan and its digest, as DeploymentPlan::new / DeploymentPlan::of compute them in
// workflows-spec/src/deploy.rs. Pure TypeScript with no imports, so it runs inside the workflow
// sandbox (which has no node:crypto): a small UTF-8 encoder and SHA-256 (FIPS 180-4).
//
// Digest = sha256 hex of the compact JSON, keys in sorted order, non-ASCII not escaped, of
//   {"allowedDomains":[...],"command":...,"env":[{"name":...,"sha256":...}],
//    "files":[{"path":...,"sha256":...}],"image":null|...,"platform":...,"profile":"production",
//    "runId":...,"timeout":...}
// plus, for a progressive deployment's stage, "phase", "healthCheckCommand" and
// "rollbackCommand" in their sorted places, each only when set.
// `env` holds each variable's name and the SHA-256 of its value (never the value), sorted by
// name; `timeout` defaults to 300000; `image` null means the worker's default image.
// Test vector (deploy.rs `the_canonical_form_is_stable`): runId "run-1", platform "vercel",
// command "vercel deploy --prod", allowedDomains ["api.vercel.com"], one file index.html with
// "<h1>hi</h1>", env {VERCEL_TOKEN: "t"}, no image, timeout 300000: digest
// ca90ee9b82be7cb1d47e64d5d2fdf3139c7e38e48af849c7a86e2002d9ccf0d6

export interface WorkspaceFile {
  path: string;
  content: string;
}

export interface PlanFile {
  path: string;
  sha256: string;
}

export interface PlanEnv {
  name: string;
  sha256: string;
}

export interface DeploymentPlan {
  runId: string;
  platform: string;
  command: string;
  allowedDomains: string[];
  files: PlanFile[];
  env: PlanEnv[];
  image: string | null;
  timeout: number;
  profile: string;
  /** A progressive deployment's stage (`canary`, `promote`, ...); absent otherwise. */
  phase?: string | null;
  healthCheckCommand?: string | null;
  rollbackCommand?: string | null;
  planDigest: string;
  warning: string;
}

/** The fields of a `deployWithApproval` input the plan covers. */
export interface PlanInput {
  runId: string;
  platform: string;
  command: string;
  workspaceFiles?: WorkspaceFile[];
  env?: Record<string, string>;
  allowedDomains?: string[];
  image?: string;
  timeout?: number;
  phase?: string;
  healthCheckCommand?: string;
  rollbackCommand?: string;
}

export const DEFAULT_DEPLOY_TIMEOUT_MS = 300000;
export const DEPLOY_PROFILE = 'production';

// Copied from PRODUCTION_WARNING in workflows-spec/src/deploy.rs.
export const PRODUCTION_WARNING =
  'WARNING: You are about to deploy to PRODUCTION. This integration will access real customer ' +
  'data, make real API calls that count against your quota, and potentially modify data (if ' +
  'write operations are enabled).';

/** The hosts a platform's CLI needs (deploy.rs `default_domains`). */
export function defaultDomains(platform: string): string[] {
  switch (platform) {
    case 'vercel':
      return ['api.vercel.com', 'vercel.com'];
    case 'netlify':
      return ['api.netlify.com', 'app.netlify.com'];
    case 'fly':
      return ['api.fly.io'];
    default:
      return [];
  }
}

/** UTF-8 bytes of a string (a lone surrogate becomes U+FFFD, as with TextEncoder). */
export function utf8(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) {
      out.push(c);
    } else if (c < 0x800) {
      out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    } else if (c < 0x10000) {
      out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    } else {
      out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
  }
  return out;
}

const K: number[] = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/** SHA-256 of a string's UTF-8 bytes, lowercase hex. */
export function sha256Hex(text: string): string {
  const bytes = utf8(text);
  const bitLength = bytes.length * 8;
  bytes.push(0x80);
  while (bytes.length % 64 !== 56) bytes.push(0);
  // 64-bit big-endian length; strings here are far below 2^32 bits, the high word is
  // computed anyway for completeness.
  const high = Math.floor(bitLength / 0x100000000);
  bytes.push((high >>> 24) & 255, (high >>> 16) & 255, (high >>> 8) & 255, high & 255);
  bytes.push((bitLength >>> 24) & 255, (bitLength >>> 16) & 255, (bitLength >>> 8) & 255, bitLength & 255);

  const h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  const w: number[] = new Array(64);
  const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < bytes.length; off += 64) {
    for (let t = 0; t < 16; t++) {
      const j = off + t * 4;
      w[t] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
    }
    for (let t = 16; t < 64; t++) {
      const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
      const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let t = 0; t < 64; t++) {
      const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t] + w[t]) | 0;
      const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + b) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0;
    h[5] = (h[5] + f) | 0;
    h[6] = (h[6] + g) | 0;
    h[7] = (h[7] + hh) | 0;
  }
  return h.map((x) => (x >>> 0).toString(16).padStart(8, '0')).join('');
}

/**
 * The compact JSON the digest covers. Keys are inserted in sorted order, which JSON.stringify
 * keeps; its string escaping (\n, \t, \u00xx lowercase, non-ASCII as is) is serde_json's.
 */
export function canonicalPlanJson(plan: Omit<DeploymentPlan, 'planDigest' | 'warning'>): string {
  return JSON.stringify({
    allowedDomains: plan.allowedDomains,
    command: plan.command,
    env: plan.env.map((e) => ({ name: e.name, sha256: e.sha256 })),
    files: plan.files.map((f) => ({ path: f.path, sha256: f.sha256 })),
    // JSON.stringify leaves out keys whose value is undefined: a key not set is not covered.
    healthCheckCommand: plan.healthCheckCommand ?? undefined,
    image: plan.image,
    phase: plan.phase ?? undefined,
    platform: plan.platform,
    profile: plan.profile,
    rollbackCommand: plan.rollbackCommand ?? undefined,
    runId: plan.runId,
    timeout: plan.timeout,
  });
}

/** DeploymentPlan::recompute_digest: the digest of the fields a plan shows. */
export function planDigest(plan: Omit<DeploymentPlan, 'planDigest' | 'warning'>): string {
  return sha256Hex(canonicalPlanJson(plan));
}

/** Orders strings by their UTF-8 bytes, as Rust's BTreeMap<String, _> does. */
function byUtf8(a: string, b: string): number {
  const x = utf8(a);
  const y = utf8(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

/** DeploymentPlan::of: the plan an approver sees (domains defaulted per platform, timeout to
 * 300000 ms), with its digest. */
export function deploymentPlan(input: PlanInput): DeploymentPlan {
  const env = input.env ?? {};
  const plan = {
    runId: input.runId,
    platform: input.platform,
    command: input.command,
    allowedDomains: [...(input.allowedDomains ?? defaultDomains(input.platform))],
    files: (input.workspaceFiles ?? []).map((f) => ({ path: f.path, sha256: sha256Hex(f.content) })),
    env: Object.keys(env)
      .sort(byUtf8)
      .map((name) => ({ name, sha256: sha256Hex(env[name]) })),
    image: input.image ?? null,
    timeout: input.timeout ?? DEFAULT_DEPLOY_TIMEOUT_MS,
    profile: DEPLOY_PROFILE,
    phase: input.phase ?? null,
    healthCheckCommand: input.healthCheckCommand ?? null,
    rollbackCommand: input.rollbackCommand ?? null,
  };
  return { ...plan, planDigest: planDigest(plan), warning: PRODUCTION_WARNING };
}
