#!/usr/bin/env node
// Patches postgres.js 3.4.9 (the driver of packages/db) after `npm install`/`npm ci`: when a
// connection closes while a small write is buffered, its deferred nextWrite() runs with
// `socket === null` and throws from a setImmediate callback, an uncaught TypeError that kills the
// service (upstream porsager/postgres#1154, #1208; fixes proposed in #1168, #1209, not released).
// It happens whenever PostgreSQL or a proxy in front of it drops connections, e.g. a failover, so
// a service would crash instead of reporting NOT_SERVING and reconnecting. The guard below does
// what #1209 does: the write is dropped and whatever waited on it is rejected with
// CONNECTION_CLOSED, which callers already handle. Idempotent; a no-op for any other version.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MARK = "/* cinderblock: nextWrite guard */";
const BROKEN = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const FIXED = `  function nextWrite(fn) {
    ${MARK}
    if (!socket) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`;

// npm workspaces hoist it to the repository's node_modules.
const root = join(fileURLToPath(new URL("..", import.meta.url)), "node_modules", "postgres");
if (!existsSync(join(root, "package.json"))) process.exit(0);
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
if (version !== "3.4.9") {
  console.warn(
    `patch-postgres: postgres ${version} is not 3.4.9; not patched (check whether it still needs the guard)`,
  );
  process.exit(0);
}
for (const file of ["src/connection.js", "cjs/src/connection.js", "cf/src/connection.js"]) {
  const path = join(root, file);
  if (!existsSync(path)) continue;
  const text = readFileSync(path, "utf8");
  if (text.includes(MARK)) continue;
  if (!text.includes(BROKEN)) {
    console.error(`patch-postgres: ${path} does not have the expected nextWrite(); not patched`);
    process.exit(1);
  }
  writeFileSync(path, text.replace(BROKEN, FIXED));
}
