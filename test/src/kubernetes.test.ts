import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer, type TLSSocket } from "node:tls";
import {
  loadApiConfig,
  loadSchedulerConfig,
  loadVolumeConfig,
  SETTING_NAMES,
  volumePeerTls,
} from "@cinderblock/config";
import { createPeerAuthenticator } from "@cinderblock/rpc";
import { REPO_ROOT } from "@cinderblock/testing";
import { Metadata } from "@grpc/grpc-js";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { type INetworkPolicy, NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, type IContainer, type IPodSpec, Namespace, Secret, Service } from "kubernetes-models/v1";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

// Offline checks of deploy/kubernetes: every object validates against the Kubernetes 1.27 OpenAPI
// schemas that kubernetes-models compiles into validators (kubeconform is neither a Debian 12 nor
// an npm package, and its schemas would have to be downloaded), and the manifests agree with the
// Dockerfile (images, ports) and with the services' own configuration schema (every variable, the
// config file, the grace period). Nothing secret is committed: the Secrets come from
// make-secrets.sh, which the test runs (openssl) and whose output it validates and mounts; the
// NetworkPolicies are evaluated for who may reach whom.

const DIR = join(REPO_ROOT, "deploy", "kubernetes");

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } & Record<
  string,
  unknown
>;

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
};
/**
 * Kinds of operators' CRDs, which kubernetes-models has no schema for: checked by the tests of the
 * file that holds them (cloudnative-pg.yaml), so a kustomization that adds one still validates.
 */
const CUSTOM_KINDS = new Set(["postgresql.cnpg.io/v1/Cluster"]);

/** Every object of a YAML file of deploy/kubernetes. */
const objectsOf = (file: string): Manifest[] =>
  parseAllDocuments(readFileSync(join(DIR, file), "utf8")).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.join("; ")}`);
    return doc.toJS() as Manifest;
  });

const kustomization = parseAllDocuments(readFileSync(join(DIR, "kustomization.yaml"), "utf8"))[0]?.toJS() as {
  resources: string[];
  images: Array<{ name: string }>;
};
const manifests: Manifest[] = kustomization.resources.flatMap(objectsOf);
const find = (kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};

/** The workloads, each with its one container and the service it runs. */
const workloads = manifests
  .filter((m) => m.kind === "Deployment" || m.kind === "StatefulSet")
  .map((m) => {
    const spec = m.spec as {
      selector: { matchLabels: Record<string, string> };
      template: {
        metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
        spec: IPodSpec;
      };
    };
    const pod = spec.template.spec;
    const container = pod.containers[0] as IContainer;
    const service = (container.image ?? "").replace(/^cinderblock-/, "").replace(/:.*$/, "");
    return { manifest: m, spec, pod, container, service };
  });

/** The Dockerfile's service targets and the ports each EXPOSEs: gRPC first, then /metrics. */
const dockerfile = readFileSync(join(REPO_ROOT, "deploy", "Dockerfile"), "utf8");
const exposed = new Map<string, number>();
const metricsPorts = new Map<string, number>();
for (const stage of dockerfile.split(/^FROM /m).slice(1)) {
  const target = /^\S+ AS (\S+)/.exec(stage)?.[1];
  const ports = /^EXPOSE (\d+) (\d+)$/m.exec(stage);
  if (target && ports) {
    exposed.set(target, Number(ports[1]));
    metricsPorts.set(target, Number(ports[2]));
  }
}

const LOADERS: Record<string, (env: Record<string, string | undefined>) => { CINDERBLOCK_SHUTDOWN_GRACE: number }> = {
  api: loadApiConfig,
  scheduler: loadSchedulerConfig,
  volume: loadVolumeConfig,
};

const scratch = mkdtempSync(join(tmpdir(), "cinderblock-k8s-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** What `deploy/kubernetes/make-secrets.sh DIR` prints (run twice: the second run must reuse DIR). */
function makeSecrets(dir: string): string {
  return execFileSync(join(DIR, "make-secrets.sh"), [dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}
const secretsDir = join(scratch, "secrets");
const secretsYaml = makeSecrets(secretsDir);
const secrets: Manifest[] = parseAllDocuments(secretsYaml).map((doc) => doc.toJS() as Manifest);
/** A generated Secret's value. */
function secretValue(name: string, key: string): string {
  const secret = secrets.find((s) => s.metadata.name === name) as { data?: Record<string, string> } | undefined;
  const value = secret?.data?.[key];
  if (value === undefined) throw new Error(`make-secrets.sh makes no Secret ${name} with ${key}`);
  return Buffer.from(value, "base64").toString("utf8");
}

/** `openssl verify` of a generated Secret's tls.crt against make-secrets.sh's CA, for a name and use. */
function verifyCertificate(secret: string, name: string, purpose: "sslserver" | "sslclient"): string {
  const ca = join(scratch, "ca.crt");
  writeFileSync(ca, secretValue("cinderblock-api-tls", "ca.crt"));
  const cert = join(scratch, `${secret}.crt`);
  writeFileSync(cert, secretValue(secret, "tls.crt"));
  const flag = /^[\d.]+$/.test(name) ? "-verify_ip" : "-verify_hostname";
  return execFileSync("openssl", ["verify", "-CAfile", ca, "-purpose", purpose, flag, name, cert], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Where each file of a pod's Secret volumes comes from, by its path in the container. */
function secretFiles(container: IContainer, pod: IPodSpec): Map<string, { secret: string; key: string }> {
  const files = new Map<string, { secret: string; key: string }>();
  for (const mount of container.volumeMounts ?? []) {
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    const sources = [
      ...(volume?.secret ? [{ secret: { name: volume.secret.secretName, items: volume.secret.items } }] : []),
      ...(volume?.projected?.sources ?? []),
    ];
    for (const source of sources) {
      for (const item of source.secret?.items ?? []) {
        files.set(`${mount.mountPath}/${item.path}`, { secret: source.secret?.name ?? "", key: item.key });
      }
    }
  }
  return files;
}

/** `X_FILE` stands for the secret setting X (a _PASSWORD, _TOKEN, _SECRET or _URL) read from a file. */
const settingOf = (name: string) =>
  /_(PASSWORD|TOKEN|SECRET|URL)_FILE$/.test(name) ? name.replace(/_FILE$/, "") : name;

/**
 * The environment a container would get (the pod name for `fieldRef`, `$(VAR)` expanded as the
 * kubelet does), with every file it names from a mounted Secret written, with make-secrets.sh's
 * value, to a scratch directory, and the ConfigMap's config file where CINDERBLOCK_CONFIG points.
 */
function environmentOf(container: IContainer, pod: IPodSpec, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  const files = secretFiles(container, pod);
  for (const variable of container.env ?? []) {
    let value = variable.value ?? "";
    const fieldRef = variable.valueFrom?.fieldRef;
    expect(variable.valueFrom?.secretKeyRef, `${variable.name}: secrets are files, not variables`).toBeUndefined();
    if (fieldRef) {
      // The pod's name, or its ordinal (the StatefulSet controller's pod-index label).
      expect(fieldRef.fieldPath).toMatch(/^metadata\.name$|^metadata\.labels\['apps\.kubernetes\.io\/pod-index'\]$/);
      value = fieldRef.fieldPath === "metadata.name" ? podName : (/-(\d+)$/.exec(podName)?.[1] ?? "");
    }
    value = value.replace(/\$\((\w+)\)/g, (_, name: string) => env[name] ?? `$(${name})`);
    const file = files.get(value);
    if (file) {
      const local = join(scratch, `${podName}-${variable.name}`);
      writeFileSync(local, secretValue(file.secret, file.key));
      value = local;
    } else if (variable.name.endsWith("_FILE")) {
      throw new Error(`${variable.name}=${value} is no file of a mounted Secret`);
    }
    env[variable.name] = value;
  }
  const configPath = env.CINDERBLOCK_CONFIG;
  if (configPath) {
    const mount = (container.volumeMounts ?? []).find((m) => configPath.startsWith(`${m.mountPath}/`));
    const volume = pod.volumes?.find((v) => v.name === mount?.name);
    const map = find("ConfigMap", volume?.configMap?.name ?? "") as unknown as { data: Record<string, string> };
    const file = map.data[configPath.slice((mount?.mountPath.length ?? 0) + 1)];
    expect(file, `${configPath} comes from a ConfigMap key`).toBeDefined();
    const local = join(scratch, `${podName}.json`);
    writeFileSync(local, file ?? "");
    env.CINDERBLOCK_CONFIG = local;
  }
  return env;
}

type Labels = Record<string, string>;
type Selector = {
  matchLabels?: Labels;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
};
/** Kubernetes' label selector semantics ({} selects everything). */
function selects(selector: Selector | undefined, labels: Labels): boolean {
  if (!selector) return false;
  const exact = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    exact &&
    (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
      const value = labels[key];
      if (operator === "In") return value !== undefined && values.includes(value);
      if (operator === "NotIn") return value === undefined || !values.includes(value);
      if (operator === "Exists") return value !== undefined;
      return value === undefined;
    })
  );
}
/** A pod that talks (its namespace's labels and its own), or a client outside the cluster. */
type Peer = { namespace: Labels; pod: Labels } | "outside";
const NAMESPACE = { "kubernetes.io/metadata.name": "cinderblock" };
const inNamespace = (pod: Labels): Peer => ({ namespace: NAMESPACE, pod });
const podOf = (name: string): Labels => {
  const labels = workloads.find((w) => w.manifest.metadata.name === name)?.spec.template.metadata.labels;
  if (!labels) throw new Error(`no workload ${name}`);
  return labels;
};
const policies = manifests.filter((m) => m.kind === "NetworkPolicy") as unknown as INetworkPolicy[];

function peerMatches(peer: Peer, rule: { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: unknown }) {
  if (peer === "outside") return rule.ipBlock !== undefined;
  if (rule.ipBlock) return false;
  // No namespaceSelector: pods of the policy's own namespace.
  const namespaceOk = rule.namespaceSelector
    ? selects(rule.namespaceSelector, peer.namespace)
    : peer.namespace["kubernetes.io/metadata.name"] === NAMESPACE["kubernetes.io/metadata.name"];
  const podOk = rule.podSelector ? selects(rule.podSelector, peer.pod) : true;
  return namespaceOk && podOk;
}
type Rule = {
  ports?: Array<{ port?: number | string; protocol?: string }>;
  peers?: Parameters<typeof peerMatches>[1][];
};
function allowedBy(rules: Rule[], peer: Peer, port: number): boolean {
  return rules.some(
    (rule) =>
      (rule.ports === undefined || rule.ports.some((p) => p.port === port && (p.protocol ?? "TCP") === "TCP")) &&
      (rule.peers === undefined || rule.peers.length === 0 || rule.peers.some((p) => peerMatches(peer, p))),
  );
}
/** Whether the policies let `from` open a TCP connection to a pod of this namespace on `port`. */
function ingressAllowed(from: Peer, to: Labels, port: number): boolean {
  const selecting = policies.filter(
    (p) => selects(p.spec?.podSelector as Selector, to) && (p.spec?.policyTypes ?? ["Ingress"]).includes("Ingress"),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    allowedBy(
      (p.spec?.ingress ?? []).map((r) => ({ ports: r.ports as Rule["ports"], peers: r.from as Rule["peers"] })),
      from,
      port,
    ),
  );
}
/** Whether the policies let a pod of this namespace open a TCP connection to `to` on `port`. */
function egressAllowed(from: Labels, to: Peer, port: number): boolean {
  const selecting = policies.filter(
    (p) => selects(p.spec?.podSelector as Selector, from) && (p.spec?.policyTypes ?? []).includes("Egress"),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    allowedBy(
      (p.spec?.egress ?? []).map((r) => ({ ports: r.ports as Rule["ports"], peers: r.to as Rule["peers"] })),
      to,
      port,
    ),
  );
}
/** Both ends agree: the sender's egress and the receiver's ingress. */
const reachable = (from: Labels, to: Labels, port: number) =>
  egressAllowed(from, inNamespace(to), port) && ingressAllowed(inNamespace(from), to, port);

describe("Kubernetes manifests (deploy/kubernetes)", () => {
  it("are valid Kubernetes objects", () => {
    expect(manifests.length).toBeGreaterThan(0);
    for (const manifest of manifests) {
      if (CUSTOM_KINDS.has(`${manifest.apiVersion}/${manifest.kind}`)) continue;
      const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
      expect(Model, `a schema for ${manifest.apiVersion} ${manifest.kind}`).toBeDefined();
      if (Model) expect(() => new Model(manifest as never).validate(), manifest.metadata.name).not.toThrow();
    }
  });

  it("put everything in the one namespace they create", () => {
    const namespace = find("Namespace", "cinderblock").metadata.name;
    for (const m of manifests.filter((m) => m.kind !== "Namespace")) {
      expect(m.metadata.namespace, `${m.kind} ${m.metadata.name}`).toBe(namespace);
    }
  });

  it("run each Dockerfile target's image, on the port it exposes, with gRPC health probes (over TLS where it is)", () => {
    expect(workloads.map((w) => w.service).sort()).toEqual([...exposed.keys()].sort());
    for (const { container, service } of workloads) {
      expect(kustomization.images.map((i) => i.name)).toContain(container.image);
      const port = exposed.get(service);
      expect(container.ports?.map((p) => p.containerPort)).toEqual([port, metricsPorts.get(service)]);
      // Readiness: service "" (dependencies up, not draining); liveness: "liveness" (the process answers).
      if (service === "scheduler") {
        // Its port carries only health, in plaintext: the kubelet's native probe.
        expect(container.readinessProbe?.grpc).toEqual({ port });
        expect(container.livenessProbe?.grpc).toEqual({ port, service: "liveness" });
      } else {
        // TLS (api) or mutual TLS (volume hosts): the kubelet's grpc probe cannot, the image's healthcheck can.
        const check = ["node", "/app/deploy/healthcheck.mjs", "grpc", String(port)];
        expect(container.readinessProbe?.exec?.command).toEqual(check);
        expect(container.livenessProbe?.exec?.command).toEqual([...check, "liveness"]);
      }
    }
  });

  it("set only real settings, which the services' own configuration accepts", () => {
    for (const { container, pod, service, manifest, spec } of workloads) {
      const env = environmentOf(container, pod, `${manifest.metadata.name}-0`);
      // A variable that is no setting is there only for others to use, as $(NAME) (POD_INDEX).
      const used = (name: string) => (container.env ?? []).some((v) => v.value?.includes(`$(${name})`));
      for (const name of Object.keys(env).filter((n) => !used(n))) {
        expect([...SETTING_NAMES, "CINDERBLOCK_CONFIG"]).toContain(settingOf(name));
      }
      expect(env.DATABASE_URL_FILE, "DATABASE_URL comes from a Secret").toBeDefined();
      expect(env.DATABASE_MIGRATION_URL_FILE, "DATABASE_MIGRATION_URL comes from a Secret").toBeDefined();
      expect(readFileSync(env.DATABASE_URL_FILE ?? "", "utf8")).toMatch(/^postgres:\/\/cinderblock:p[0-9a-f]{48}@/);
      expect(readFileSync(env.DATABASE_MIGRATION_URL_FILE ?? "", "utf8")).toMatch(/^postgres:\/\/cinderblock_owner:/);
      // deploy/nats/nats-server.conf's users: api, scheduler, and each volume host by its name.
      expect(env.NATS_USER).toBe(service === "volume" ? env.CINDERBLOCK_HOST : service);
      expect(env.NATS_PASSWORD_FILE, "NATS_PASSWORD comes from a Secret").toBeDefined();
      const load = LOADERS[service];
      expect(load, service).toBeDefined();
      const config = load?.(env) as Record<string, unknown>;
      // The listen address's port is the container port the probes use.
      const listen = String(config[`CINDERBLOCK_${service.toUpperCase()}_LISTEN`]);
      expect(Number(listen.slice(listen.lastIndexOf(":") + 1))).toBe(exposed.get(service));
      expect(listen.startsWith("0.0.0.0:")).toBe(true);
      // /metrics listens where the image says (its ENV), on the port the scrape annotation names.
      const image = dockerfile.split(/^FROM /m).find((stage) => stage.includes(` AS ${service}\n`)) ?? "";
      const metrics = /CINDERBLOCK_METRICS_LISTEN=(\S+)/.exec(image)?.[1] ?? "";
      expect(metrics).toBe(`0.0.0.0:${metricsPorts.get(service)}`);
      expect(spec.template.metadata.annotations?.["prometheus.io/port"]).toBe(String(metricsPorts.get(service)));
    }
  });

  it("give a stopping pod more time than its drain (CINDERBLOCK_SHUTDOWN_GRACE plus 5 s to close, plus a margin)", () => {
    for (const { container, pod, service, manifest } of workloads) {
      const env = environmentOf(container, pod, `${manifest.metadata.name}-0`);
      const grace = LOADERS[service]?.(env).CINDERBLOCK_SHUTDOWN_GRACE ?? 0;
      expect(pod.terminationGracePeriodSeconds ?? 30).toBeGreaterThanOrEqual(grace + 10);
    }
  });

  it("run as a non-root user without privileges, with resource requests and limits", () => {
    for (const { container, pod } of workloads) {
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(container.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
      for (const kind of ["requests", "limits"] as const) {
        expect(container.resources?.[kind]?.cpu, `${kind}.cpu`).toBeDefined();
        expect(container.resources?.[kind]?.memory, `${kind}.memory`).toBeDefined();
      }
    }
  });

  it("select their pods, and route Services to the gRPC port", () => {
    for (const { spec } of workloads) {
      expect(spec.template.metadata.labels).toMatchObject(spec.selector.matchLabels);
    }
    for (const service of manifests.filter((m) => m.kind === "Service")) {
      const selector = (service.spec as { selector: Record<string, string> }).selector;
      const target = workloads.find((w) =>
        Object.entries(selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v),
      );
      expect(target, `pods for Service ${service.metadata.name}`).toBeDefined();
      for (const port of (service.spec as { ports: Array<{ targetPort: string | number }> }).ports) {
        expect(
          target?.container.ports?.some((p) => p.name === port.targetPort || p.containerPort === port.targetPort),
        ).toBe(true);
      }
    }
  });

  it("keep each volume host's file backend on its own claim, found through a headless Service", () => {
    const volume = find("StatefulSet", "cinderblock-volume").spec as {
      serviceName: string;
      volumeClaimTemplates: Array<{ metadata: { name: string } }>;
    };
    const headless = find("Service", volume.serviceName).spec as { clusterIP?: string };
    expect(headless.clusterIP).toBe("None");
    const host = workloads.find((w) => w.service === "volume");
    if (!host) throw new Error("no volume workload");
    const env = environmentOf(host.container, host.pod, "cinderblock-volume-0");
    const config = loadVolumeConfig(env);
    const claim = volume.volumeClaimTemplates[0]?.metadata.name;
    const mount = host.container.volumeMounts?.find((m) => m.name === claim);
    expect(mount?.mountPath).toBe(config.CINDERBLOCK_FILE_DIR);
    expect(config.CINDERBLOCK_HOST).toBe("cinderblock-volume-0");
    expect(config.CINDERBLOCK_VOLUME_ADVERTISE).toBe(
      `cinderblock-volume-0.${volume.serviceName}.cinderblock.svc.cluster.local:${exposed.get("volume")}`,
    );
  });

  it("run two volume hosts, each with its own host name, backend and advertised address", () => {
    const volume = find("StatefulSet", "cinderblock-volume").spec as { replicas: number };
    expect(volume.replicas).toBe(2);
    const host = workloads.find((w) => w.service === "volume");
    if (!host) throw new Error("no volume workload");
    const configs = [0, 1].map((i) =>
      loadVolumeConfig(environmentOf(host.container, host.pod, `cinderblock-volume-${i}`)),
    );
    expect(configs.map((c) => `${c.CINDERBLOCK_HOST}@${c.CINDERBLOCK_BACKEND_NAME}`)).toEqual([
      "cinderblock-volume-0@file-0",
      "cinderblock-volume-1@file-1",
    ]);
    expect(new Set(configs.map((c) => c.CINDERBLOCK_VOLUME_ADVERTISE)).size).toBe(2);
  });
  it("let one volume host read a volume from another (a retype's migration) over mutual TLS, as a peer only", async () => {
    const host = workloads.find((w) => w.service === "volume");
    if (!host) throw new Error("no volume workload");
    const [source, target] = [0, 1].map((i) =>
      loadVolumeConfig(environmentOf(host.container, host.pod, `cinderblock-volume-${i}`)),
    ) as [ReturnType<typeof loadVolumeConfig>, ReturnType<typeof loadVolumeConfig>];
    // The target has a client certificate for its peers (without one it could not receive a volume).
    const peer = volumePeerTls(target);
    if (!peer) throw new Error("the volume hosts have no peer certificate (CINDERBLOCK_VOLUME_PEER_TLS_*)");
    // The source's server, as its settings say: its certificate, mutual TLS against its client CA.
    const server = createServer({
      cert: readFileSync(source.CINDERBLOCK_VOLUME_TLS_CERT_FILE ?? ""),
      key: readFileSync(source.CINDERBLOCK_VOLUME_TLS_KEY_FILE ?? ""),
      ca: readFileSync(source.CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE ?? ""),
      requestCert: true,
      rejectUnauthorized: true,
    });
    const accepted = new Promise<TLSSocket>((resolve) => server.once("secureConnection", resolve));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      // The target dials the address the source advertises (the services table's), verifying its
      // certificate for that name against the peer CA, and presents its peer certificate.
      const advertised = source.CINDERBLOCK_VOLUME_ADVERTISE ?? "";
      const servername = advertised.slice(0, advertised.lastIndexOf(":"));
      const client = connect({
        host: "127.0.0.1",
        port: (server.address() as AddressInfo).port,
        servername,
        ca: readFileSync(peer.caFile),
        cert: readFileSync(peer.certFile),
        key: readFileSync(peer.keyFile),
      });
      await new Promise<void>((resolve, reject) => {
        client.once("secureConnect", resolve);
        client.once("error", reject);
      });
      const socket = await accepted;
      client.end();
      // The source's authenticators: the peer certificate is allowed for the migration methods,
      // not as the api.
      const call = {
        metadata: new Metadata(),
        transport: { transportSecurityType: "ssl", sslPeerCertificate: socket.getPeerCertificate() },
      };
      call.metadata.set("x-project-id", "p1");
      call.metadata.set("x-user-id", "u1");
      await expect(
        createPeerAuthenticator({ allowedClients: source.CINDERBLOCK_VOLUME_TLS_ALLOWED_PEERS }).authenticate(call),
      ).resolves.toMatchObject({ projectId: "p1" });
      await expect(
        createPeerAuthenticator({ allowedClients: source.CINDERBLOCK_VOLUME_TLS_ALLOWED_CLIENTS }).authenticate(call),
      ).rejects.toThrow(/cinderblock-volume is not allowed/);
    } finally {
      server.close();
    }
  });

  it("commit no Secret and no credential: make-secrets.sh makes them at deploy time", () => {
    for (const file of readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f))) {
      const text = readFileSync(join(DIR, file), "utf8");
      for (const doc of parseAllDocuments(text)) {
        expect((doc.toJS() as Manifest | null)?.kind, `${file} holds a Secret`).not.toBe("Secret");
      }
      expect(text, `${file}: a URL with a password`).not.toMatch(/:\/\/[^/\s:@"]+:[^/\s@"]+@/);
      expect(text).not.toMatch(/change-me/i);
    }
  });

  it("make-secrets.sh prints valid Secrets, the same again from its directory, with every key the pods mount", () => {
    expect(secrets.length).toBe(12);
    for (const secret of secrets) {
      expect(secret.metadata.namespace).toBe("cinderblock");
      expect(() => new Secret(secret as never).validate(), secret.metadata.name).not.toThrow();
    }
    expect(makeSecrets(secretsDir)).toBe(secretsYaml);
    for (const { container, pod } of workloads) {
      for (const { secret, key } of secretFiles(container, pod).values()) {
        expect(() => secretValue(secret, key)).not.toThrow();
      }
    }
    // A new directory: new credentials.
    expect(makeSecrets(join(scratch, "other"))).not.toBe(secretsYaml);
  });

  it("make-secrets.sh's certificates: signed by its CA, for the names the services are reached by", () => {
    const check = verifyCertificate;
    expect(check("cinderblock-api-tls", "cinderblock-api.cinderblock.svc.cluster.local", "sslserver")).toMatch(/OK/);
    expect(check("cinderblock-api-host-client", "cinderblock-api", "sslclient")).toMatch(/OK/);
    // The name each volume host advertises (a wildcard covers every pod of the StatefulSet).
    expect(
      check(
        "cinderblock-volume-tls",
        "cinderblock-volume-0.cinderblock-volume.cinderblock.svc.cluster.local",
        "sslserver",
      ),
    ).toMatch(/OK/);
    expect(check("cinderblock-volume-tls", "127.0.0.1", "sslclient")).toMatch(/OK/); // its own health probe
    // The hosts' client certificate for each other (a retype's migration): a client only.
    expect(check("cinderblock-volume-peer", "cinderblock-volume", "sslclient")).toMatch(/OK/);
    expect(() => check("cinderblock-volume-peer", "cinderblock-volume", "sslserver")).toThrow();
    expect(() => check("cinderblock-api-tls", "cinderblock-api", "sslclient")).toThrow();
    expect(() => check("cinderblock-volume-tls", "cinderblock-api", "sslclient")).toThrow();
  });

  it("deny everything by default, in both directions", () => {
    const deny = policies.find((p) => p.metadata?.name === "default-deny");
    expect(deny?.spec?.podSelector).toEqual({});
    expect(deny?.spec?.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(deny?.spec?.ingress ?? []).toEqual([]);
    expect(deny?.spec?.egress ?? []).toEqual([]);
    const stranger = { app: "something-else" };
    expect(ingressAllowed("outside", stranger, 80)).toBe(false);
    expect(egressAllowed(stranger, "outside", 443)).toBe(false);
  });

  it("let anyone reach the api's gRPC port, and only the api and the other volume hosts reach the volume hosts", () => {
    const [api, scheduler, volume] = ["cinderblock-api", "cinderblock-scheduler", "cinderblock-volume"].map(podOf) as [
      Labels,
      Labels,
      Labels,
    ];
    const otherNamespace: Peer = { namespace: { "kubernetes.io/metadata.name": "tenant" }, pod: { app: "x" } };
    expect(ingressAllowed("outside", api, 50051)).toBe(true);
    expect(ingressAllowed(otherNamespace, api, 50051)).toBe(true);
    expect(ingressAllowed("outside", api, 9464)).toBe(false);
    expect(reachable(api, volume, 50052)).toBe(true);
    expect(reachable(scheduler, volume, 50052)).toBe(false);
    expect(reachable(volume, volume, 50052)).toBe(true); // a retype's migration, host to host
    expect(reachable(volume, api, 50051)).toBe(false);
    expect(ingressAllowed("outside", volume, 50052)).toBe(false);
    expect(ingressAllowed(otherNamespace, volume, 50052)).toBe(false);
    expect(ingressAllowed("outside", scheduler, 50053)).toBe(false);
    // Prometheus in the `monitoring` namespace scrapes each /metrics port, no one else does.
    const monitoring: Peer = { namespace: { "kubernetes.io/metadata.name": "monitoring" }, pod: { app: "prometheus" } };
    for (const [pod, port] of [
      [api, 9464],
      [scheduler, 9465],
      [volume, 9466],
    ] as const) {
      expect(ingressAllowed(monitoring, pod, port)).toBe(true);
      expect(ingressAllowed(otherNamespace, pod, port)).toBe(false);
    }
  });

  it("let only the services reach PostgreSQL and NATS, and the services reach nothing else but DNS and Keystone", () => {
    const services = ["cinderblock-api", "cinderblock-scheduler", "cinderblock-volume"].map(podOf);
    const postgres = { "app.kubernetes.io/name": "postgres" };
    const nats = { "app.kubernetes.io/name": "nats" };
    for (const pod of services) {
      expect(reachable(pod, postgres, 5432)).toBe(true);
      expect(reachable(pod, nats, 4222)).toBe(true);
      expect(egressAllowed(pod, "outside", 22)).toBe(false);
      const dns: Peer = {
        namespace: { "kubernetes.io/metadata.name": "kube-system" },
        pod: { "k8s-app": "kube-dns" },
      };
      expect(egressAllowed(pod, dns, 53)).toBe(true);
    }
    const stranger = inNamespace({ app: "something-else" });
    expect(ingressAllowed(stranger, postgres, 5432)).toBe(false);
    expect(ingressAllowed(stranger, nats, 4222)).toBe(false);
    expect(ingressAllowed("outside", postgres, 5432)).toBe(false);
    expect(ingressAllowed("outside", nats, 4222)).toBe(false);
    const [api, scheduler] = services as [Labels, Labels];
    expect(egressAllowed(api, "outside", 443)).toBe(true); // Keystone
    expect(egressAllowed(scheduler, "outside", 443)).toBe(false);
  });
  it("list every node of a 3-node JetStream cluster, and keep 3 replicas of each stream and consumer", () => {
    const nodes = [0, 1, 2].map((i) => `nats-${i}.nats-headless.cinderblock.svc.cluster.local`);
    for (const { container, pod, service, manifest } of workloads) {
      const env = environmentOf(container, pod, `${manifest.metadata.name}-0`);
      const config = LOADERS[service]?.(env) as unknown as Record<string, unknown>;
      const servers = String(config.NATS_URL).split(",");
      expect(
        servers.map((server) => new URL(server.trim()).hostname),
        service,
      ).toEqual(nodes);
      expect(config.CINDERBLOCK_NATS_REPLICAS, service).toBe(3);
    }
    // The clients verify each node by its name; the nodes present it to each other on their routes.
    for (const node of nodes) {
      expect(verifyCertificate("cinderblock-nats", node, "sslserver")).toMatch(/OK/);
      expect(verifyCertificate("cinderblock-nats", node, "sslclient")).toMatch(/OK/);
    }
  });

  it("run two or more pods of each service, with a budget that keeps them serving through a drain", () => {
    type Budget = { spec: { minAvailable?: number; maxUnavailable?: number; selector: Selector } };
    const budgets = manifests.filter((m) => m.kind === "PodDisruptionBudget") as unknown as Budget[];
    for (const { manifest, spec, service } of workloads) {
      expect((manifest.spec as { replicas: number }).replicas, service).toBeGreaterThanOrEqual(2);
      const budget = budgets.find((b) => selects(b.spec.selector, spec.template.metadata.labels));
      // Replicas of the api and the scheduler are interchangeable: one must stay. Each volume host is
      // its own backend: one at a time may go.
      expect(budget?.spec, `a PodDisruptionBudget for ${service}`).toEqual(
        expect.objectContaining(service === "volume" ? { maxUnavailable: 1 } : { minAvailable: 1 }),
      );
    }
  });

  it("cloudnative-pg.yaml, applied on its own: a primary and a synchronous standby behind the Service the URLs name", () => {
    expect(kustomization.resources).not.toContain("cloudnative-pg.yaml");
    const [cluster, ...others] = objectsOf("cloudnative-pg.yaml");
    expect(others).toEqual([]);
    if (!cluster) throw new Error("cloudnative-pg.yaml is empty");
    expect(CUSTOM_KINDS).toContain(`${cluster.apiVersion}/${cluster.kind}`);
    expect(cluster.metadata.namespace).toBe("cinderblock");
    const spec = cluster.spec as {
      instances: number;
      postgresql: { synchronous: { method: string; number: number; dataDurability: string } };
      bootstrap: {
        initdb: {
          database: string;
          owner: string;
          secret: { name: string };
          postInitApplicationSQLRefs: { secretRefs: Array<{ name: string; key: string }> };
        };
      };
      certificates: { serverTLSSecret: string; serverCASecret: string };
      inheritedMetadata: { labels: Labels };
    };
    expect(spec.instances).toBeGreaterThanOrEqual(2);
    expect(spec.postgresql.synchronous).toMatchObject({ method: "any", number: 1 });
    expect(["required", "preferred"]).toContain(spec.postgresql.synchronous.dataDurability);
    // Both URLs name the cluster's read-write Service, which the operator keeps on the primary.
    const url = (key: string) => new URL(secretValue("cinderblock-database", key));
    const [service, migration] = [url("database-url"), url("database-migration-url")];
    const readWrite = `${cluster.metadata.name}-rw.cinderblock.svc.cluster.local`;
    expect([service.hostname, migration.hostname]).toEqual([readWrite, readWrite]);
    // It makes the database and its owner, the migrations' role, with that URL's password...
    const { initdb } = spec.bootstrap;
    expect(initdb.database).toBe(migration.pathname.slice(1));
    expect(initdb.owner).toBe(migration.username);
    expect(secretValue(initdb.secret.name, "username")).toBe(migration.username);
    expect(secretValue(initdb.secret.name, "password")).toBe(migration.password);
    // ...then the services' DML-only role, with theirs.
    const sql = initdb.postInitApplicationSQLRefs.secretRefs.map((ref) => secretValue(ref.name, ref.key)).join("\n");
    expect(sql).toContain(`CREATE ROLE ${service.username} LOGIN PASSWORD '${service.password}'`);
    expect(sql).toMatch(/GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cinderblock/);
    // Its server certificate is for the name the services dial, from the CA they verify it with.
    expect(verifyCertificate(spec.certificates.serverTLSSecret, readWrite, "sslserver")).toMatch(/OK/);
    expect(secretValue(spec.certificates.serverCASecret, "ca.crt")).toBe(secretValue("cinderblock-database", "ca.crt"));
    // Its pods fall under the `postgres` NetworkPolicy.
    const postgresPolicy = policies.find((p) => p.metadata?.name === "postgres");
    expect(selects(postgresPolicy?.spec?.podSelector as Selector, spec.inheritedMetadata.labels)).toBe(true);
  });

  it("let NATS nodes route to each other and PostgreSQL instances replicate, and nobody else on those ports", () => {
    const postgres = { "app.kubernetes.io/name": "postgres" };
    const nats = { "app.kubernetes.io/name": "nats" };
    expect(reachable(nats, nats, 6222)).toBe(true);
    expect(reachable(postgres, postgres, 5432)).toBe(true);
    for (const pod of ["cinderblock-api", "cinderblock-scheduler", "cinderblock-volume"].map(podOf)) {
      expect(reachable(pod, nats, 6222)).toBe(false);
      expect(reachable(pod, postgres, 8000)).toBe(false);
    }
    // CloudNativePG: its operator reaches each instance's status port, each instance the Kubernetes API.
    const operator: Peer = { namespace: { "kubernetes.io/metadata.name": "cnpg-system" }, pod: { app: "cnpg" } };
    expect(ingressAllowed(operator, postgres, 8000)).toBe(true);
    expect(ingressAllowed(operator, postgres, 5432)).toBe(false);
    expect(egressAllowed(postgres, "outside", 443)).toBe(true);
    expect(egressAllowed(nats, "outside", 443)).toBe(false);
    expect(egressAllowed(nats, inNamespace(postgres), 5432)).toBe(false);
  });
});
