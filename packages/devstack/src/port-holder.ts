import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect } from "node:http2";
import { join } from "node:path";
import { formatHostPort, type HostPort } from "./tcp.js";

/** A process as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** The command line, arguments joined by spaces. */
  command: string;
}

const SERVICE_SCRIPT = /(\S*)\/services\/(api|scheduler|volume)\/dist\/main\.js/;
const LAUNCHER_SCRIPT = /\/packages\/devstack\/dist\/main\.js/;

/** Reads one process from /proc; undefined when it is gone or not readable. */
function processInfo(pid: number, proc = "/proc"): ProcessInfo | undefined {
  try {
    const command = readFileSync(join(proc, String(pid), "cmdline"), "utf8")
      .split("\0")
      .join(" ")
      .trim();
    // The command name in field 2 may hold spaces and parentheses: the fields after it follow the last ")".
    const stat = readFileSync(join(proc, String(pid), "stat"), "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return { pid, ppid, command };
  } catch {
    return undefined;
  }
}

function pids(proc: string): number[] {
  return readdirSync(proc)
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/**
 * The processes listening on TCP `port` (any address), from /proc/net/tcp{,6} and each process's
 * open sockets. Empty where /proc cannot tell, e.g. for another user's process.
 */
export function listenersOf(port: number, proc = "/proc"): ProcessInfo[] {
  const inodes = new Set<string>();
  for (const table of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = readFileSync(join(proc, "net", table), "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      // st 0A is LISTEN; field 9 is the socket's inode.
      if (!local || fields[3] !== "0A") continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16) === port && fields[9]) inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return [];
  const found: ProcessInfo[] = [];
  for (const pid of pids(proc)) {
    let fds: string[];
    try {
      fds = readdirSync(join(proc, String(pid), "fd"));
    } catch {
      continue;
    }
    const holds = fds.some((fd) => {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(join(proc, String(pid), "fd", fd)));
        return match?.[1] !== undefined && inodes.has(match[1]);
      } catch {
        return false;
      }
    });
    const info = holds ? processInfo(pid, proc) : undefined;
    if (info) found.push(info);
  }
  return found;
}

/**
 * True when a Cinderblock api answers at the endpoint: its grpc.health.v1 Check knows the service
 * `cinderblock.v1.VolumesService` (grpc-status 0, SERVING or not); other gRPC servers say
 * NOT_FOUND, and anything else is not gRPC at all. Spoken over plain HTTP/2, so the launcher needs
 * no gRPC library.
 */
export function answersAsCinderblock(endpoint: HostPort, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const session = connect(`http://${formatHostPort(endpoint)}`);
    const timer = setTimeout(() => done(false), timeoutMs);
    function done(answer: boolean) {
      clearTimeout(timer);
      session.destroy();
      resolve(answer);
    }
    session.on("error", () => done(false));
    const name = Buffer.from("cinderblock.v1.VolumesService");
    // HealthCheckRequest { string service = 1 } in a gRPC frame (uncompressed, 4-byte length).
    const message = Buffer.concat([Buffer.from([0x0a, name.length]), name]);
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(message.length, 1);
    const request = session.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/grpc",
      te: "trailers",
    });
    let grpcStatus: unknown;
    request.on("response", (headers) => {
      grpcStatus = headers["grpc-status"];
    });
    request.on("trailers", (trailers) => {
      grpcStatus = trailers["grpc-status"];
    });
    request.on("data", () => {});
    request.on("end", () => done(grpcStatus === "0"));
    request.on("error", () => done(false));
    request.end(Buffer.concat([frame, message]));
  });
}

/**
 * Says what holds a port the launcher needs and how to free it: an `npm start` still running
 * (stop that one), Cinderblock services it left behind (kill them, they drain on SIGTERM), or
 * some other process.
 */
export async function describePortHolder(endpoint: HostPort, proc = "/proc"): Promise<string> {
  const address = formatHostPort(endpoint);
  const alternative = "or set CINDERBLOCK_API_LISTEN to another address";
  const holder = listenersOf(endpoint.port, proc)[0];
  const service = holder && SERVICE_SCRIPT.exec(holder.command);
  if (holder && service) {
    const parent = processInfo(holder.ppid, proc);
    if (parent && LAUNCHER_SCRIPT.test(parent.command)) {
      return (
        `${address} is in use by the ${service[2]} of a Cinderblock that an earlier \`npm start\` is still running ` +
        `(launcher pid ${parent.pid}): stop it with Ctrl-C in its terminal or \`kill ${parent.pid}\`, ${alternative}`
      );
    }
    // Its siblings: the other services of the same checkout with the same parent (after a lost
    // launcher, whatever adopted orphans).
    const siblings = pids(proc)
      .map((pid) => processInfo(pid, proc))
      .filter((p): p is ProcessInfo => p?.ppid === holder.ppid && SERVICE_SCRIPT.exec(p.command)?.[1] === service[1]);
    const all = [holder.pid, ...siblings.map((p) => p.pid).filter((pid) => pid !== holder.pid)];
    return (
      `${address} is in use by a Cinderblock ${service[2]} (pid ${holder.pid}) that no running \`npm start\` owns ` +
      `(left behind by an earlier one?): stop it${all.length > 1 ? " and its sibling services" : ""} with ` +
      `\`kill ${all.join(" ")}\` (they drain and exit), ${alternative}`
    );
  }
  if (holder) {
    const command = holder.command.length > 80 ? `${holder.command.slice(0, 77)}...` : holder.command;
    return `${address} is in use by pid ${holder.pid} (${command}): stop it, ${alternative}`;
  }
  if (await answersAsCinderblock(endpoint)) {
    return `${address} is in use by a Cinderblock api this user cannot see the process of: stop it, ${alternative}`;
  }
  return `${address} is already in use: stop whatever listens there, ${alternative}`;
}
