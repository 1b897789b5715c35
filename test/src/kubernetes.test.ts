import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadApiConfig, loadSchedulerConfig, loadVolumeConfig, SETTING_NAMES } from "@cinderblock/config";
import { REPO_ROOT } from "@cinderblock/testing";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, type IContainer, type IPodSpec, Namespace, Secret, Service } from "kubernetes-models/v1";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

// Offline checks of deploy/kubernetes: every object validates against the Kubernetes 1.27 OpenAPI
// schemas that kubernetes-models compiles into validators (kubeconform is neither a Debian 12 nor
// an npm package, and its schemas would have to be downloaded), and the manifests agree with the
// Dockerfile (images, ports) and with the services' own configuration schema (every variable, the
// config file, the grace period).

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
};

const kustomization = parseAllDocuments(readFileSync(join(DIR, "kustomization.yaml"), "utf8"))[0]?.toJS() as {
  resources: string[];
  images: Array<{ name: string }>;
};
const manifests: Manifest[] = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), "utf8")).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.join("; ")}`);
    return doc.toJS() as Manifest;
  }),
);
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

/**
 * The environment a container would get (the Secret's values, the pod name for `fieldRef`,
 * `$(VAR)` expanded as the kubelet does), with the ConfigMap's config file written where
 * CINDERBLOCK_CONFIG points, in a scratch directory.
 */
function environmentOf(container: IContainer, pod: IPodSpec, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    let value = variable.value ?? "";
    const secretRef = variable.valueFrom?.secretKeyRef;
    const fieldRef = variable.valueFrom?.fieldRef;
    if (secretRef) {
      const secret = find("Secret", secretRef.name ?? "") as { stringData?: Record<string, string> };
      value = secret.stringData?.[secretRef.key] ?? "";
      expect(value, `${secretRef.name}/${secretRef.key}`).not.toBe("");
    } else if (fieldRef) {
      expect(fieldRef.fieldPath).toBe("metadata.name");
      value = podName;
    }
    env[variable.name] = value.replace(/\$\((\w+)\)/g, (_, name: string) => env[name] ?? `$(${name})`);
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

describe("Kubernetes manifests (deploy/kubernetes)", () => {
  it("are valid Kubernetes objects", () => {
    expect(manifests.length).toBeGreaterThan(0);
    for (const manifest of manifests) {
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

  it("run each Dockerfile target's image, on the port it exposes, with native gRPC health probes", () => {
    expect(workloads.map((w) => w.service).sort()).toEqual([...exposed.keys()].sort());
    for (const { container, service } of workloads) {
      expect(kustomization.images.map((i) => i.name)).toContain(container.image);
      const port = exposed.get(service);
      expect(container.ports?.map((p) => p.containerPort)).toEqual([port, metricsPorts.get(service)]);
      // Readiness: service "" (dependencies up, not draining); liveness: "liveness" (the process answers).
      expect(container.readinessProbe?.grpc).toEqual({ port });
      expect(container.livenessProbe?.grpc).toEqual({ port, service: "liveness" });
    }
  });

  it("set only real settings, which the services' own configuration accepts", () => {
    for (const { container, pod, service, manifest, spec } of workloads) {
      const env = environmentOf(container, pod, `${manifest.metadata.name}-0`);
      for (const name of Object.keys(env)) expect([...SETTING_NAMES, "CINDERBLOCK_CONFIG"]).toContain(name);
      expect(env.DATABASE_URL, "DATABASE_URL comes from the Secret").toBeDefined();
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
});
