import { and, eq, getTableColumns, gt, or, type SQL, sql } from "drizzle-orm";
import { builtOnce, type Executor } from "./client.js";
import { services } from "./schema.js";
import type { ServiceRow } from "./types.js";

/** What a volume host reports about one backend on each heartbeat. */
export interface ServiceReport {
  host: string;
  hostName: string;
  backend: string;
  availabilityZone: string;
  capabilities: Record<string, unknown>;
  /** The host's internal gRPC address, "host:port". */
  grpcAddress?: string;
}

/** Records a heartbeat with the backend's capabilities (creates the row the first time). */
export async function reportService(db: Executor, report: ServiceReport): Promise<void> {
  await db
    .insert(services)
    .values({ ...report, heartbeatAt: sql`now()` })
    .onConflictDoUpdate({
      target: services.host,
      set: {
        hostName: report.hostName,
        backend: report.backend,
        availabilityZone: report.availabilityZone,
        capabilities: report.capabilities,
        grpcAddress: report.grpcAddress ?? "",
        heartbeatAt: sql`now()`,
        updatedAt: sql`now()`,
      },
    });
}

const servicesByHostQuery = builtOnce((db) =>
  db
    .select({
      service: services,
      up: sql<boolean>`${services.heartbeatAt} > now() - make_interval(secs => ${sql.placeholder("downTimeSeconds")})`,
    })
    .from(services)
    .where(sql`${services.host} = any(${sql.placeholder("hosts")}::text[])`)
    .prepare("services_by_host"),
);

/**
 * Backends by their "<host>@<backend>" names, each with whether its heartbeat is younger than
 * `downTimeSeconds`, in one statement; names that are no backend are absent from the map.
 */
export async function getServicesByHost(
  db: Executor,
  hosts: readonly string[],
  downTimeSeconds: number,
): Promise<Map<string, ServiceRow & { up: boolean }>> {
  const rows = await servicesByHostQuery(db).execute({ hosts: [...new Set(hosts)], downTimeSeconds });
  return new Map(rows.map((row) => [row.service.host, { ...row.service, up: row.up }]));
}

/** A backend by its "<host>@<backend>" name, with whether its heartbeat is younger than `downTimeSeconds`. */
export async function getService(
  db: Executor,
  host: string,
  downTimeSeconds: number,
): Promise<(ServiceRow & { up: boolean }) | undefined> {
  return (await getServicesByHost(db, [host], downTimeSeconds)).get(host);
}

/** Backends that are up (recent heartbeat), enabled and not frozen. */
export async function listUsableServices(db: Executor, downTimeSeconds: number): Promise<ServiceRow[]> {
  return db
    .select()
    .from(services)
    .where(
      and(
        eq(services.disabled, false),
        eq(services.frozen, false),
        gt(services.heartbeatAt, sql`now() - make_interval(secs => ${downTimeSeconds})`),
      ),
    );
}

/** Changes a backend's administrative flags (freeze/thaw, disable/enable). */
export async function setServiceFlags(
  db: Executor,
  host: string,
  flags: Partial<Pick<ServiceRow, "disabled" | "disabledReason" | "frozen">>,
): Promise<void> {
  await db
    .update(services)
    .set({ ...flags, updatedAt: sql`now()` })
    .where(eq(services.host, host));
}

/** The backend `<host>@<backend>`, or every backend of `<host>` (a name without `@`). */
function hostMatch(host: string): SQL | undefined {
  return host.includes("@") ? eq(services.host, host) : or(eq(services.host, host), eq(services.hostName, host));
}

const upSince = (downTimeSeconds: number) =>
  sql<boolean>`${services.heartbeatAt} > now() - make_interval(secs => ${downTimeSeconds})`;

/**
 * Every backend (or those `host` names: see {@link changeServiceFlags}), with whether its heartbeat
 * is younger than `downTimeSeconds`: the scheduler filters them itself, so that a refusal names
 * the disabled, frozen and silent ones too.
 */
export async function listServicesWithState(
  db: Executor,
  downTimeSeconds: number,
  host?: string,
): Promise<(ServiceRow & { up: boolean })[]> {
  const rows = await db
    .select({ service: services, up: upSince(downTimeSeconds) })
    .from(services)
    .where(host ? hostMatch(host) : undefined)
    .orderBy(services.host);
  return rows.map((r) => ({ ...r.service, up: r.up }));
}

/**
 * Sets an operator's flags on the backend `<host>@<backend>`, or on every backend of `<host>` (a
 * name without `@`), compare-and-swap: only rows whose `frozen` is `expectFrozen` (when given)
 * change. Returns the rows changed, with whether each is up.
 */
export async function changeServiceFlags(
  db: Executor,
  host: string,
  flags: Partial<Pick<ServiceRow, "disabled" | "disabledReason" | "frozen">>,
  options: { downTimeSeconds: number; expectFrozen?: boolean },
): Promise<(ServiceRow & { up: boolean })[]> {
  const expected = options.expectFrozen === undefined ? undefined : eq(services.frozen, options.expectFrozen);
  const rows = await db
    .update(services)
    .set({ ...flags, updatedAt: sql`now()` })
    .where(and(hostMatch(host), expected))
    .returning({ ...getTableColumns(services), up: upSince(options.downTimeSeconds) });
  return rows.sort((a, b) => a.host.localeCompare(b.host));
}

/** Whether the backend `<host>@<backend>` is frozen (an unknown one is not). */
export async function isBackendFrozen(db: Executor, host: string): Promise<boolean> {
  const [row] = await db.select({ frozen: services.frozen }).from(services).where(eq(services.host, host));
  return row?.frozen === true;
}
