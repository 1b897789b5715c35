import { run } from "./cli.js";

// The `cinderblock` command: the environment is read here and nowhere else.
const abort = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => abort.abort());
}
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  // `cinderblock events | head -1`: the reader went away; stop quietly.
  if (error.code === "EPIPE") abort.abort();
});

run(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: abort.signal,
})
  .then((code) => {
    process.exitCode = code;
  })
  .catch((error: unknown) => {
    process.stderr.write(`cinderblock: ${String(error)}\n`);
    process.exitCode = 1;
  });
