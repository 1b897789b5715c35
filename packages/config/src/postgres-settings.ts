import { accessSync, constants } from "node:fs";
import { z } from "zod";
import { parsePostgresUrl, postgresUrlProblem } from "./postgres-url.js";

/** The sslmode values of libpq (and postgres.js) a DATABASE_URL may carry. */
const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/**
 * A PostgreSQL URL setting: libpq's form, with one host or a comma-separated list of them (tried in
 * order; `target_session_attrs=read-write` picks the primary among them).
 */
export const postgresUrl = z.string().superRefine((text, ctx) => {
  const problem = postgresUrlProblem(text);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

/**
 * PostgreSQL settings beside DATABASE_URL (the running services' role, which needs only SELECT,
 * INSERT, UPDATE and DELETE): the role that runs migrations, and the CA that verifies the server.
 */
export const postgresFields = {
  /**
   * The role that runs the migrations (DDL) at start-up and then grants DATABASE_URL's role what it
   * needs; unset, DATABASE_URL's role migrates too (one role, as `npm start` runs).
   */
  DATABASE_MIGRATION_URL: postgresUrl.optional(),
  /**
   * PEM file of the CA(s) that signed PostgreSQL's certificate. With `sslmode=verify-full` (or
   * `verify-ca`) in the URLs; alone it means verify-full.
   */
  DATABASE_SSL_CA_FILE: z.string().min(1).optional(),
};

/** A setting that is wrong only together with another one. */
interface Problem {
  key: string;
  message: string;
}

/**
 * What is wrong across the PostgreSQL settings: an unknown sslmode, a CA file that cannot be read,
 * or a CA file with a URL that turns verification off.
 */
export function postgresProblems(values: {
  DATABASE_URL?: string;
  DATABASE_MIGRATION_URL?: string;
  DATABASE_SSL_CA_FILE?: string;
}): Problem[] {
  const problems: Problem[] = [];
  const ca = values.DATABASE_SSL_CA_FILE;
  if (ca !== undefined) {
    try {
      accessSync(ca, constants.R_OK);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
      problems.push({ key: "DATABASE_SSL_CA_FILE", message: `cannot read the file (${reason})` });
    }
  }
  for (const key of ["DATABASE_URL", "DATABASE_MIGRATION_URL"] as const) {
    const url = values[key];
    if (url === undefined) continue;
    const mode = parsePostgresUrl(url).url.searchParams.get("sslmode");
    if (mode === null) continue;
    if (!SSL_MODES.includes(mode)) {
      problems.push({ key, message: `unknown sslmode=${mode} (expected one of ${SSL_MODES.join(", ")})` });
    } else if (ca !== undefined && ["disable", "allow", "prefer"].includes(mode)) {
      problems.push({
        key,
        message: `sslmode=${mode} does not verify the server, but DATABASE_SSL_CA_FILE is set (use verify-full)`,
      });
    }
  }
  return problems;
}
