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

const refusedConnections = counter({
  name: "cinderblock_api_connections_refused_total",
  help: "Client connections the public port closed on arrival: CINDERBLOCK_MAX_CONNECTIONS were open",
});

/** Counts one connection refused at the cap (listen's `onRefused`); a flood is a number, not log lines. */
export function countRefusedConnection(): void {
  refusedConnections.inc();
}
