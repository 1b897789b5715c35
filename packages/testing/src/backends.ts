import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "./stack.js";

const execFileAsync = promisify(execFile);

/** A backend a suite or bench boots from `scripts/<name>/`: the LVM test guest, Ceph, podman, Keystone. */
export type Backend = "lvm-guest" | "ceph" | "containers" | "keystone";

/** The directory of a backend's scripts (`check.sh`, `up.sh`, `down.sh`, ...). */
export function backendScripts(backend: Backend): string {
  return join(REPO_ROOT, "scripts", backend);
}

/**
 * Why the backend cannot run on this machine, as its `check.sh` says (its stdout, else the error),
 * or undefined when it can.
 */
export async function backendUnavailable(backend: Backend): Promise<string | undefined> {
  try {
    await execFileAsync(join(backendScripts(backend), "check.sh"));
    return undefined;
  } catch (error) {
    return String((error as { stdout?: string }).stdout || error).trim();
  }
}

/**
 * For a suite that skips where what it needs is missing (`why`, undefined when present): in CI
 * (`CI=true`) a missing dependency fails the run instead, so a suite never passes there by
 * skipping; elsewhere it warns that `suite` skips and why. Returns `why`, for `describe.skipIf`.
 */
export function mustRunInCI(suite: string, why: string | undefined): string | undefined {
  if (why && process.env.CI === "true") throw new Error(`${suite} must run in CI, but it cannot run here: ${why}`);
  if (why) console.warn(`skipping ${suite}: ${why}`);
  return why;
}
