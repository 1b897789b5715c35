#!/usr/bin/env node
// Patches postgres.js 3.4.9 (the driver of packages/db) after `npm install`/`npm ci`. When a
// connection closes while a small write is buffered:
// 1. its deferred nextWrite() runs with `socket === null` and throws from a setImmediate callback,
//    an uncaught TypeError that kills the service (upstream porsager/postgres#1154, #1208; fixes
//    proposed in #1168, #1209, not released). The guard does what #1209 does: the write is dropped
//    and whatever waited on it is rejected with CONNECTION_CLOSED, which callers already handle.
// 2. closed() cancels the timer but leaves `nextWriteTimer` set and the old bytes in `chunk`, so
//    the reconnected connection never flushes a small write again (or sends stale bytes first):
//    its queries hang. Both are reset there.
// It happens whenever PostgreSQL or a proxy in front of it drops connections, e.g. a failover: a
// service would crash, or hang, instead of reporting NOT_SERVING and reconnecting.
// Idempotent; a no-op for any other version.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PATCHES = [
  {
    mark: "/* cinderblock: nextWrite guard */",
    broken: `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`,
    fixed: `  function nextWrite(fn) {
    /* cinderblock: nextWrite guard */
    if (!socket) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`,
  },
  {
    mark: "/* cinderblock: reset the write buffer */",
    broken: `    remaining = 0
    incomings = null
    clearImmediate(nextWriteTimer)
`,
    fixed: `    remaining = 0
    incomings = null
    clearImmediate(nextWriteTimer)
    /* cinderblock: reset the write buffer */
    chunk = nextWriteTimer = null
`,
  },
];

// npm workspaces hoist it to the repository's node_modules.
const root = join(fileURLToPath(new URL("..", import.meta.url)), "node_modules", "postgres");
if (!existsSync(join(root, "package.json"))) process.exit(0);
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
if (version !== "3.4.9") {
  console.warn(`patch-postgres: postgres ${version} is not 3.4.9; not patched (check whether it still needs it)`);
  process.exit(0);
}
for (const file of ["src/connection.js", "cjs/src/connection.js", "cf/src/connection.js"]) {
  const path = join(root, file);
  if (!existsSync(path)) continue;
  let text = readFileSync(path, "utf8");
  for (const { mark, broken, fixed } of PATCHES) {
    if (text.includes(mark)) continue;
    if (!text.includes(broken)) {
      console.error(`patch-postgres: ${path} is not as expected ("${mark}"); not patched`);
      process.exit(1);
    }
    text = text.replace(broken, fixed);
  }
  writeFileSync(path, text);
}
