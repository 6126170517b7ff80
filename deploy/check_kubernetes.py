"""Checks of the rendered Kubernetes manifests that no generic schema knows (run by
scripts/check-deploy): the KEDA objects against the models generated from KEDA's CRDs, with
unknown fields refused; the ScaledObject's queues against the worker's topology; the grace
period against the shutdown deadline; probes, security and the migration Job.

Usage: check_kubernetes.py RENDERED.yaml CONFIG.env
"""

import sys

import yaml
from cloudcoil.models.keda import v1alpha1 as keda


def unknown_fields(given, kept, path=""):
    """Keys of `given` that the model dropped (pydantic ignores unknown fields)."""
    if isinstance(given, dict):
        missing = []
        for key, value in given.items():
            if not isinstance(kept, dict) or key not in kept:
                missing.append(f"{path}.{key}")
            else:
                missing += unknown_fields(value, kept[key], f"{path}.{key}")
        return missing
    if isinstance(given, list) and isinstance(kept, list):
        return [m for i, (g, k) in enumerate(zip(given, kept)) for m in unknown_fields(g, k, f"{path}[{i}]")]
    return []


def main(rendered, config_env):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    config = dict(
        line.split("=", 1) for line in open(config_env).read().splitlines() if line and not line.startswith("#")
    )
    failures = []

    for kind in ("ScaledObject", "TriggerAuthentication"):
        for d in by_kind.get(kind, []):
            model = getattr(keda, kind).model_validate(d)
            kept = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
            failures += [f"{kind}: unknown field {f}" for f in unknown_fields(d, kept)]

    (scaled,) = by_kind["ScaledObject"]
    (auth,) = by_kind["TriggerAuthentication"]
    (deployment,) = by_kind["Deployment"]
    (job,) = by_kind["Job"]
    (secret,) = by_kind["Secret"]
    spec = scaled["spec"]

    # Queue names as src/queue/topology.rs makes them: <prefix>.jobs, <prefix>.retry.<ms>ms.
    prefix = config["REGARD_QUEUE_PREFIX"]
    delays = sorted({int(float(s) * 1000) for s in config["REGARD_RETRY_DELAYS"].split(",")})
    want = {f"{prefix}.jobs"} | {f"{prefix}.retry.{ms}ms" for ms in delays}
    got = {t["metadata"]["queueName"] for t in spec["triggers"]}
    if got != want:
        failures.append(f"ScaledObject queues {sorted(got)} != topology {sorted(want)}")
    for t in spec["triggers"]:
        if t["type"] != "rabbitmq" or t["metadata"].get("protocol") != "amqp":
            failures.append(f"trigger {t['name']}: want rabbitmq over amqp")
        if t.get("authenticationRef", {}).get("name") != auth["metadata"]["name"]:
            failures.append(f"trigger {t['name']}: not authenticated by {auth['metadata']['name']}")
    if spec["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        failures.append("ScaledObject does not target the worker Deployment")
    if not (0 <= spec["minReplicaCount"] <= 1 < spec["maxReplicaCount"]):
        failures.append("ScaledObject must scale from 0 or 1 to more than 1")
    ref = auth["spec"]["secretTargetRef"][0]
    if ref["name"] != secret["metadata"]["name"] or ref["key"] not in secret.get("data", {}):
        failures.append(f"TriggerAuthentication names {ref['name']}/{ref['key']}, not in the Secret")

    pod = deployment["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    deadline = int(config["REGARD_SHUTDOWN_DEADLINE"])
    if pod["terminationGracePeriodSeconds"] <= deadline:
        failures.append(f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} <= shutdown deadline {deadline}")
    if worker["readinessProbe"]["httpGet"]["path"] != "/readyz":
        failures.append("readiness probe must ask /readyz")
    if worker["livenessProbe"]["httpGet"]["path"] != "/healthz":
        failures.append("liveness probe must ask /healthz")
    for name, p in (("worker", pod), ("migrate", job["spec"]["template"]["spec"])):
        c = p["containers"][0]
        if not p["securityContext"].get("runAsNonRoot"):
            failures.append(f"{name}: runAsNonRoot")
        if not c["securityContext"].get("readOnlyRootFilesystem"):
            failures.append(f"{name}: readOnlyRootFilesystem")
        if "resources" not in c or "limits" not in c["resources"]:
            failures.append(f"{name}: resources")
        refs = {next(iter(e.values()))["name"] for e in c["envFrom"]}
        if refs != {by_kind["ConfigMap"][0]["metadata"]["name"], secret["metadata"]["name"]}:
            failures.append(f"{name}: envFrom {refs}")
    if "/tmp" not in {m["mountPath"] for m in worker.get("volumeMounts", [])}:
        failures.append("worker: /tmp must be a writable volume")
    if job["spec"]["template"]["spec"]["containers"][0]["args"] != ["migrate"]:
        failures.append("migration Job must run `regard migrate`")

    if failures:
        sys.exit("check-deploy: kubernetes:\n  " + "\n  ".join(failures))
    print(f"check-deploy: kubernetes: KEDA objects match the CRD models; {len(got)} queues scaled on: {', '.join(sorted(got))}")


if __name__ == "__main__":
    main(*sys.argv[1:])
