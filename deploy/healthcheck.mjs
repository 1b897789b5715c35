// Container health check for the Cinderblock images (exit 0 healthy, 1 not).
//   node healthcheck.mjs grpc [port]   grpc.health.v1.Health/Check (service "") answers SERVING
//   node healthcheck.mjs tcp [port]    something accepts TCP connections on the port
//   node healthcheck.mjs alive         PID 1 (the service) is running
// The port defaults to the one in CINDERBLOCK_API_LISTEN (grpc) or CINDERBLOCK_VOLUME_LISTEN (tcp);
// the scheduler and volume images pass theirs (50053, 50052): every service serves grpc.health.v1.
import { connect } from "node:net";
import { credentials, makeGenericClientConstructor } from "@grpc/grpc-js";

const [mode = "grpc", portArg] = process.argv.slice(2);
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
  // HealthCheckRequest{service:""} is empty on the wire; HealthCheckResponse is field 1 (enum):
  // 0x08 0x01 means SERVING. Decoded by hand so the check needs nothing but @grpc/grpc-js.
  const Health = makeGenericClientConstructor(
    {
      Check: {
        path: "/grpc.health.v1.Health/Check",
        requestStream: false,
        responseStream: false,
        requestSerialize: () => Buffer.alloc(0),
        requestDeserialize: (b) => b,
        responseSerialize: (b) => b,
        responseDeserialize: (b) => b,
      },
    },
    "Health",
  );
  const client = new Health(`127.0.0.1:${port}`, credentials.createInsecure());
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
