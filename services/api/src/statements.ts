import { counter } from "@cinderblock/telemetry";

const statements = counter({
  name: "cinderblock_db_statements_total",
  help: "SQL statements the api sent to PostgreSQL, by the first table each names",
  labelNames: ["table"] as const,
});

/** The first table a statement reads or writes (`other` for none, e.g. `select 1`). */
function tableOf(sql: string): string {
  return /\b(?:from|update|into)\s+"?([a-z_]+)"?/i.exec(sql)?.[1] ?? "other";
}

/** Counts one statement (createDb's `onStatement`): e.g. that an idle WatchSnapshot reads nothing. */
export function countStatement(sql: string): void {
  statements.inc({ table: tableOf(sql) });
}
