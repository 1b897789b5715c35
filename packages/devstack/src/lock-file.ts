import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { LaunchError } from "./errors.js";

/** A held lock; `release()` removes the file (idempotent). */
export interface LockFile {
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    // Signal 0 checks existence and permission without delivering anything.
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else, so it is alive.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes a pid lock file next to an embedded server's data directory. Two launchers writing the
 * same PGlite or JetStream directory would corrupt it and neither server locks it itself. A file
 * left behind by a launcher that was killed is taken over when its pid is gone.
 */
export function acquireLockFile(path: string, what: string): LockFile {
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: "wx" });
      let held = true;
      return {
        release() {
          if (held) rmSync(path, { force: true });
          held = false;
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const pid = Number.parseInt(readFileSync(path, "utf8"), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new LaunchError(`${what} is in use by another launcher (pid ${pid}); stop it first, or remove ${path}`);
    }
    rmSync(path, { force: true });
  }
  throw new Error(`could not take the lock ${path}`);
}
