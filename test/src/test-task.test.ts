import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "@cinderblock/testing";
import { describe, expect, it } from "vitest";

// `npm test` on a fresh clone (nothing built yet): turbo runs one task at a time in some order of
// the task graph, so a package whose tests start the services must depend on the services' builds,
// or its tests can run before services/*/dist exists. And one failing package must not hide the rest.

const execFileAsync = promisify(execFile);

/** Packages whose tests start processes from other packages' dist/, and what they start. */
const SPAWNS: Record<string, string[]> = {
  "@cinderblock/e2e": [
    "@cinderblock/api",
    "@cinderblock/scheduler",
    "@cinderblock/volume",
    "@cinderblock/cli",
    "@cinderblock/devstack",
  ],
  "@cinderblock/bench": ["@cinderblock/api", "@cinderblock/scheduler", "@cinderblock/volume"],
};

describe("npm test's task graph", () => {
  it("builds every service a package's tests start before those tests run", async () => {
    const { stdout } = await execFileAsync(
      join(REPO_ROOT, "node_modules", ".bin", "turbo"),
      ["run", "test", "--dry=json"],
      {
        cwd: REPO_ROOT,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    const tasks = (JSON.parse(stdout) as { tasks: Array<{ taskId: string; dependencies: string[] }> }).tasks;
    for (const [pkg, started] of Object.entries(SPAWNS)) {
      const test = tasks.find((t) => t.taskId === `${pkg}#test`);
      expect(test, `${pkg}#test`).toBeDefined();
      for (const name of started) expect(test?.dependencies, `${pkg}#test`).toContain(`${name}#build`);
    }
  });

  it("runs every package's tests even when one fails (the exit code still says so)", () => {
    const scripts = (
      JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }
    ).scripts;
    expect(scripts.test).toMatch(/turbo run test .*--continue(=dependencies-successful)?( |$)/);
  });
});
