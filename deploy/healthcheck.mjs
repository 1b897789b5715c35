// Container health check for the Cinderblock images (exit 0 healthy, 1 not).
//   node healthcheck.mjs grpc [port] [service]   grpc.health.v1.Health/Check (service "" unless
//                                      given, e.g. liveness) answers SERVING
//   node healthcheck.mjs tcp [port]    something accepts TCP connections on the port
//   node healthcheck.mjs alive         PID 1 (the service) is running
// The port defaults to the one in CINDERBLOCK_API_LISTEN (grpc) or CINDERBLOCK_VOLUME_LISTEN (tcp);
// the scheduler and volume images pass theirs (50053, 50052): every service serves grpc.health.v1.
// TLS as the service's own environment says: on the api's port with CINDERBLOCK_API_TLS_CERT_FILE
// set, over TLS; on the volume host's port with CINDERBLOCK_VOLUME_TLS_CERT_FILE set, over mutual
// TLS, presenting the host's own certificate (issued for client use too). The probe talks to its
// own process on loopback, so it does not verify the server's certificate: it asks whether the
// service answers, not who it is. (Kubernetes' native grpc probe cannot speak TLS at all.)
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { credentials, makeGenericClientConstructor } from "@grpc/grpc-js";

const [mode = "grpc", portArg, service = ""] = process.argv.slice(2);
const listen = (mode === "tcp" ? process.env.CINDERBLOCK_VOLUME_LISTEN : process.env.CINDERBLOCK_API_LISTEN) ?? "";
const port = Number(portArg ?? listen.slice(listen.lastIndexOf(":") + 1));
const fail = (why) => {
  console.error(`unhealthy: ${why}`);
  process.exit(1);
};
const timer = setTimeout(() => fail("no answer within 2.5 s"), 2500);

if (mode === "alive") {
  try {
    process.kill(1, 0);
    process.exit(0);
  } catch (err) {
    fail(String(err));
  }
} else if (!Number.isInteger(port) || port <= 0) {
  fail(`no port (argument or ${mode === "tcp" ? "CINDERBLOCK_VOLUME_LISTEN" : "CINDERBLOCK_API_LISTEN"})`);
} else if (mode === "tcp") {
  const socket = connect(port, "127.0.0.1", () => {
    socket.end();
    process.exit(0);
  });
  socket.on("error", (err) => fail(String(err)));
} else if (mode === "grpc") {
  // HealthCheckRequest is field 1 (string service), empty on the wire for ""; HealthCheckResponse
  // is field 1 (enum): 0x08 0x01 means SERVING. By hand, so the check needs nothing but @grpc/grpc-js.
  const name = Buffer.from(service);
  const request = name.length > 0 ? Buffer.concat([Buffer.from([0x0a, name.length]), name]) : Buffer.alloc(0);
  const Health = makeGenericClientConstructor(
    {
      Check: {
        path: "/grpc.health.v1.Health/Check",
        requestStream: false,
        responseStream: false,
        requestSerialize: () => request,
        requestDeserialize: (b) => b,
        responseSerialize: (b) => b,
        responseDeserialize: (b) => b,
      },
    },
    "Health",
  );
  // A name, not the IP, as TLS' server name (RFC 6066); unverified anyway, as said above.
  const client = new Health(`127.0.0.1:${port}`, channelCredentials(port), {
    "grpc.ssl_target_name_override": "localhost",
  });
  client.Check({}, { deadline: Date.now() + 2000 }, (err, res) => {
    clearTimeout(timer);
    client.close();
    if (err) fail(err.message);
    if (res.length >= 2 && res[0] === 0x08 && res[1] === 0x01) process.exit(0);
    fail(`status ${res.length >= 2 ? res[1] : 0} (not SERVING)`);
  });
} else {
  fail(`unknown mode ${mode}`);
}

/** Plaintext, TLS or mutual TLS, as the service listening on `port` is configured. */
function channelCredentials(port) {
  const env = process.env;
  const portOf = (listen) => Number((listen ?? "").slice((listen ?? "").lastIndexOf(":") + 1));
  const verify = { rejectUnauthorized: false };
  try {
    if (env.CINDERBLOCK_VOLUME_TLS_CERT_FILE && portOf(env.CINDERBLOCK_VOLUME_LISTEN) === port) {
      const key = readFileSync(env.CINDERBLOCK_VOLUME_TLS_KEY_FILE ?? "");
      return credentials.createSsl(null, key, readFileSync(env.CINDERBLOCK_VOLUME_TLS_CERT_FILE), verify);
    }
    if (env.CINDERBLOCK_API_TLS_CERT_FILE && portOf(env.CINDERBLOCK_API_LISTEN) === port) {
      return credentials.createSsl(null, null, null, verify);
    }
  } catch (err) {
    fail(`cannot read the TLS files: ${err.message}`);
  }
  return credentials.createInsecure();
}
