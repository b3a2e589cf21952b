#!/usr/bin/env python3
"""Schema and consistency check of the Kubernetes manifests in this directory.

* Core kinds (Namespace, DaemonSet, Service) are validated with
  kubernetes-validate in strict mode (unknown fields are errors) against
  each Kubernetes version in KUBE_VERSIONS.
* PodMonitor and ServiceMonitor (monitoring.coreos.com/v1) are validated
  against the CRD schemas vendored in schemas/, made strict the same way.
* Cross-checks that a schema cannot see: selectors match the pod labels,
  named ports exist, the security context is the intended minimum.

Runs in the venv that deploy/test.sh builds (kubernetes-validate, PyYAML,
jsonschema). Prints one line per problem and exits 1 on any.
Usage: check_manifests.py [FILE.yaml ...]   (default: every manifest here)
"""
import copy
import glob
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
KUBE_VERSIONS = ["1.28.0", "1.37.0"]
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
}
CAPS = {"BPF", "PERFMON", "SYS_ADMIN", "SYSLOG", "SETUID", "SETGID"}
HOST_MOUNTS = {"/sys/kernel/debug", "/sys/kernel/tracing", "/sys/fs/bpf", "/sys/kernel/btf"}
META_KEYS = {"name", "namespace", "labels", "annotations"}

errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def strict(schema):
    """additionalProperties: false wherever the CRD lists properties and does
    not keep unknown fields: what the API server's strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def load(paths):
    docs = []
    for path in paths:
        with open(path) as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                    err(f"{os.path.relpath(path, HERE)}[{i}]", "not a Kubernetes object (kind/apiVersion missing)")
                    continue
                docs.append((f"{os.path.relpath(path, HERE)} {doc['kind']}/{doc.get('metadata', {}).get('name')}", doc))
    return docs


def validate_schema(where, doc):
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        with open(os.path.join(HERE, "schemas", CRD_SCHEMAS[key])) as f:
            schema = strict(json.load(f))
        schema.pop("$comment", None)
        for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str):
            path = ".".join(str(p) for p in e.absolute_path) or "(root)"
            err(where, f"schema: {path}: {e.message}")
        extra = set(doc.get("metadata", {})) - META_KEYS
        if extra:
            err(where, f"schema: metadata: unexpected {sorted(extra)}")
        return
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            err(where, f"no schema for {doc['apiVersion']} {doc['kind']} in Kubernetes {version}")
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            err(where, f"schema (Kubernetes {version}): {path}: {e.message}")


def subset(a, b):
    return all(b.get(k) == v for k, v in (a or {}).items())


def cross_check(docs):
    by_kind = {}
    for where, doc in docs:
        by_kind.setdefault(doc["kind"], []).append((where, doc))
    ds_list = by_kind.get("DaemonSet", [])
    if len(ds_list) != 1:
        err("manifests", f"expected one DaemonSet, found {len(ds_list)}")
        return
    where, ds = ds_list[0]
    ns = ds["metadata"].get("namespace")
    if ns != "sync-trace":
        err(where, f"namespace is {ns!r}, not 'sync-trace'")
    if not any(d["metadata"]["name"] == ns for _, d in by_kind.get("Namespace", [])):
        err(where, f"namespace {ns!r} has no Namespace manifest")
    tmpl = ds["spec"]["template"]
    pod_labels = tmpl["metadata"].get("labels", {})
    if not ds["spec"]["selector"].get("matchLabels") or not subset(ds["spec"]["selector"]["matchLabels"], pod_labels):
        err(where, "spec.selector.matchLabels does not match the pod template labels")
    pod = tmpl["spec"]
    if pod.get("hostPID") is not True:
        err(where, "hostPID must be true")
    if not any(t.get("operator") == "Exists" and "key" not in t for t in pod.get("tolerations", [])):
        err(where, "no catch-all toleration (operator: Exists): would not run on tainted nodes")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    c = pod["containers"][0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    sc = c.get("securityContext", {})
    if sc.get("privileged") is not False:
        err(where, "securityContext.privileged must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        err(where, "securityContext.readOnlyRootFilesystem must be true")
    caps = sc.get("capabilities", {})
    if caps.get("drop") != ["ALL"]:
        err(where, "capabilities.drop must be [ALL]")
    if set(caps.get("add", [])) != CAPS:
        err(where, f"capabilities.add must be exactly {sorted(CAPS)}, is {caps.get('add')}")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = c.get(probe)
        if probe == "livenessProbe" and not p:
            err(where, "no livenessProbe")
        if p and "httpGet" in p:
            port = p["httpGet"]["port"]
            if isinstance(port, str) and port not in ports:
                err(where, f"{probe} port {port!r} is not a container port")
            if p["httpGet"].get("path") != "/metrics":
                err(where, f"{probe} path is not /metrics")
    args = c.get("args", [])
    if "--json" in args:
        err(where, "args must not contain --json")
    if "--metrics-addr" not in args or args.index("--metrics-addr") + 1 >= len(args):
        err(where, "args lack --metrics-addr ADDR")
    else:
        addr = args[args.index("--metrics-addr") + 1]
        if ports.get("metrics") is None or not addr.endswith(f":{ports['metrics']}"):
            err(where, f"--metrics-addr {addr} does not listen on the 'metrics' container port")
    mounted = {}
    for m in c.get("volumeMounts", []):
        v = volumes.get(m["name"])
        if v is None:
            err(where, f"volumeMount {m['name']!r} has no volume")
            continue
        if "hostPath" in v:
            mounted[v["hostPath"]["path"]] = m
    missing = HOST_MOUNTS - set(mounted)
    if missing:
        err(where, f"missing hostPath mounts {sorted(missing)}")
    if "/sys/kernel/btf" in mounted and not mounted["/sys/kernel/btf"].get("readOnly"):
        err(where, "/sys/kernel/btf must be mounted readOnly")
    res = c.get("resources", {})
    if not res.get("requests") or not res.get("limits"):
        err(where, "resources.requests and resources.limits are required")

    for kind in ("PodMonitor", "ServiceMonitor", "Service"):
        for w, d in by_kind.get(kind, []):
            if d["metadata"].get("namespace") != ns:
                err(w, f"namespace {d['metadata'].get('namespace')!r} is not {ns!r}")
    for w, pm in by_kind.get("PodMonitor", []):
        spec = pm["spec"]
        if not subset(spec["selector"].get("matchLabels"), pod_labels):
            err(w, "selector does not match the DaemonSet's pod labels")
        if ns not in spec.get("namespaceSelector", {}).get("matchNames", [ns]):
            err(w, f"namespaceSelector does not include {ns!r}")
        if pod_labels.get(spec.get("jobLabel")) != "sync-trace":
            err(w, "jobLabel must name a pod label whose value is 'sync-trace' (job=\"sync-trace\")")
        for ep in spec.get("podMetricsEndpoints", []):
            if ep.get("port") not in ports:
                err(w, f"podMetricsEndpoints port {ep.get('port')!r} is not a container port")
    services = by_kind.get("Service", [])
    for w, svc in services:
        if not subset(svc["spec"].get("selector"), pod_labels):
            err(w, "selector does not match the DaemonSet's pod labels")
        for p in svc["spec"].get("ports", []):
            tp = p.get("targetPort")
            if isinstance(tp, str) and tp not in ports:
                err(w, f"targetPort {tp!r} is not a container port")
    for w, sm in by_kind.get("ServiceMonitor", []):
        spec = sm["spec"]
        match = [s for _, s in services if subset(spec["selector"].get("matchLabels"), s["metadata"].get("labels", {}))]
        if not match:
            err(w, "selector matches no Service")
        for ep in spec.get("endpoints", []):
            if not any(ep.get("port") == p.get("name") for s in match for p in s["spec"].get("ports", [])):
                err(w, f"endpoints port {ep.get('port')!r} is not a port of the selected Service")
        if any(s["metadata"].get("labels", {}).get(spec.get("jobLabel")) != "sync-trace" for s in match):
            err(w, "jobLabel must name a Service label whose value is 'sync-trace'")


def main(argv):
    paths = argv or sorted(glob.glob(os.path.join(HERE, "*.yaml")) + glob.glob(os.path.join(HERE, "*", "*.yaml")))
    docs = load(paths)
    for where, doc in docs:
        validate_schema(where, doc)
    cross_check(docs)
    for e in errors:
        print(e)
    if not errors:
        print(f"{len(docs)} manifests valid (Kubernetes {', '.join(KUBE_VERSIONS)}; PodMonitor/ServiceMonitor CRD v1)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
