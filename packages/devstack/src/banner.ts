import { styleText } from "node:util";
import { formatPostgresUrl, parsePostgresUrl } from "@cinderblock/config";

/** What the banner describes. */
export interface BannerInfo {
  /** `host:port` clients connect to (never a wildcard). */
  apiAddress: string;
  databaseUrl: string;
  databaseEmbedded: boolean;
  natsUrl: string;
  natsEmbedded: boolean;
  /** CINDERBLOCK_AUTH_STRATEGY the api runs with (noauth unless the environment says otherwise). */
  authStrategy: string;
  /** `host:port` of the Cinder v3 REST listener, when it runs. */
  restAddress?: string | undefined;
}

/** Hides the password of a URL (of one host or several) so the banner can be pasted into a bug report. */
function redactUrl(url: string): string {
  try {
    const parsed = parsePostgresUrl(url);
    if (parsed.url.password) parsed.url.password = "***";
    return formatPostgresUrl(parsed);
  } catch {
    // NOTE: not a URL we can take apart: print nothing of it rather than a password.
    return "(DATABASE_URL, not shown)";
  }
}

/**
 * The text printed once the api accepts connections: where everything runs and commands to try,
 * written so each example can be pasted into a shell as is.
 */
export function formatBanner(info: BannerInfo): string {
  const base = `http://${info.apiAddress}`;
  const curl = "npx buf curl --protocol grpc --http2-prior-knowledge";
  const noauth = info.authStrategy === "noauth";
  const identity = noauth
    ? "-H 'x-project-id: demo' -H 'x-user-id: alice'"
    : info.authStrategy === "jwt"
      ? '-H "authorization: Bearer $TOKEN"'
      : '-H "x-auth-token: $TOKEN"';
  const rule = "─".repeat(78);
  const bold = (text: string) => styleText("bold", text, { stream: process.stdout });
  const dim = (text: string) => styleText("dim", text, { stream: process.stdout });
  return [
    rule,
    bold("Cinderblock is running"),
    `  gRPC API    ${info.apiAddress}  (plaintext HTTP/2)`,
    `  PostgreSQL  ${redactUrl(info.databaseUrl)}${info.databaseEmbedded ? "  (embedded PGlite, data/pglite)" : ""}`,
    `  NATS        ${info.natsUrl}${info.natsEmbedded ? "  (embedded nats-server, data/nats)" : ""}`,
    ...(info.restAddress ? [`  Cinder API  http://${info.restAddress}/v3  (Cinder block-storage v3 REST)`] : []),
    noauth
      ? bold(
          "  Identity    noauth: NO AUTHENTICATION. Callers state their project and roles (x-project-id, x-roles);\n" +
            "              development only, on this machine's loopback address (README, Security).",
        )
      : `  Identity    ${info.authStrategy} (README, Security)`,
    "",
    "Try:",
    dim("  # list the services (server reflection)"),
    `  ${curl} --list-services ${base}`,
    dim("  # create a 1 GB volume, then list the project's volumes"),
    `  ${curl} ${identity} -d '{"name":"vol1","sizeGb":1}' ${base}/cinderblock.v1.VolumesService/CreateVolume`,
    `  ${curl} ${identity} -d '{}' ${base}/cinderblock.v1.VolumesService/ListVolumes`,
    ...(info.restAddress && noauth
      ? [
          dim("  # the same with the openstack client (python3-openstackclient), over the Cinder v3 REST API"),
          `  openstack --os-auth-type admin_token --os-token alice:demo --os-endpoint http://${info.restAddress}/v3/demo volume list`,
        ]
      : []),
    "",
    "Ctrl-C stops everything.",
    rule,
  ].join("\n");
}
