#!/usr/bin/env python3
"""What the Kubernetes manifests promise, checked on what kustomize renders (make k8s-validate).

The schema check (kubernetes-validate) says a manifest is well-formed; this says it does what the README says:

  * every Job and CronJob ends at once on exit 2 (podFailurePolicy FailJob; bad configuration is not retried),
    with restartPolicy Never, and ignores disruptions;
  * images are pulled IfNotPresent, versioned tags equal the release (Sources/BuildInfo), and every object and pod
    carries app.kubernetes.io/instance, version (= the release) and managed-by;
  * an Indexed Job sets SHARD_COUNT to its completions, and a backfill reaches its end in one run;
  * the nightly gaps jobs check every kline table the klines CronJobs fill (market, series and timeframe, suspended
    CronJobs included: unsuspending one must not leave its tables unchecked), and futures_metrics when metrics runs;
  * the database and the collector are each one NetworkPolicy destination; the configured collector endpoint names
    a Service that the same rendering deploys (never a collector that does not exist), on a port the telemetry
    policy opens; the database URL of a rendered Secret (MYSQL_URI or DATABASE_URL) goes to a port the database policy
    opens, and without one, the port of the store the overlay declares (DB_ADAPTER) is open;
  * every `follow` Deployment serves its probes on its --health-port (HEALTH_PORT): liveness /healthz, readiness /readyz,
    a rollout never takes the only follower away before its successor is ready (maxUnavailable 0), its grace period
    keeps 5 s above --shutdown-timeout, and the egress policy opens its market's stream port (spot: 9443);
  * every extractor container whose root filesystem is read-only mounts a writable /tmp (TMPDIR): the archive
    downloads are spooled there (without it they are held in memory);
  * LICENSE exists and is the license the image's label names.

Usage: k8s_policy_check.py DIR=RENDERED.yaml ...   (DIR as in k8s/overlays/production; what is deployed as is: the
       overlays and k8s/scale-out, not the building blocks base and observability)
       k8s_policy_check.py --self-test DIR=RENDERED.yaml ...   (each check must catch a manifest broken on purpose)
"""
import copy
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by")


def release_version():
    text = (ROOT / "Sources/BuildInfo/BuildInfo.swift").read_text()
    match = re.search(r'static let version = "([^"]+)"', text)
    if not match:
        raise SystemExit("Sources/BuildInfo/BuildInfo.swift has no version")
    return match.group(1)


def pod_spec(obj):
    """(job spec, pod template) of a Job or CronJob."""
    job = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return job, job["template"]


def args_of(container):
    return [str(a) for a in container.get("args", [])]


def option(args, name):
    """The value of --name in an argument list (--name value or --name=value), or None."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def check(where, docs, version, license_label):
    problems = []

    def fail(message):
        problems.append(f"{where}: {message}")

    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    jobs = by_kind.get("CronJob", []) + by_kind.get("Job", [])
    ours = [d for d in docs if d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/part-of") == "binance-extractor"]

    # Labels: every object of ours, and every pod template. The extractor's objects carry its release; others (the
    # development collector) carry their own.
    for d in ours:
        labels = d["metadata"].get("labels", {})
        missing = [k for k in REQUIRED_LABELS if k not in labels]
        if missing:
            fail(f"{d['kind']}/{d['metadata']['name']} lacks labels {missing}")
        elif labels.get("app.kubernetes.io/name") == "binance-extractor" and str(labels["app.kubernetes.io/version"]) != version:
            fail(f"{d['kind']}/{d['metadata']['name']} has app.kubernetes.io/version {labels['app.kubernetes.io/version']}, the release is {version}")

    for obj in jobs:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        job, template = pod_spec(obj)
        spec = template["spec"]
        pod_labels = template.get("metadata", {}).get("labels", {})
        missing = [k for k in REQUIRED_LABELS if k not in pod_labels]
        if missing:
            fail(f"{name}: its pods lack labels {missing}")
        if spec.get("restartPolicy") != "Never":
            fail(f"{name}: restartPolicy must be Never (podFailurePolicy needs it, and a retry is a new pod)")
        rules = job.get("podFailurePolicy", {}).get("rules", [])
        containers = {c["name"] for c in spec["containers"]}
        ends_on_2 = any(r.get("action") == "FailJob" and r.get("onExitCodes", {}).get("operator") == "In"
                        and 2 in r.get("onExitCodes", {}).get("values", [])
                        and r.get("onExitCodes", {}).get("containerName") in containers for r in rules)
        if not ends_on_2:
            fail(f"{name}: no podFailurePolicy rule ends the Job on exit 2 (bad configuration must not be retried)")
        if not any(r.get("action") == "Ignore" and any(c.get("type") == "DisruptionTarget" for c in r.get("onPodConditions", []))
                   for r in rules):
            fail(f"{name}: a disruption (eviction, preemption) should not count as a failure")
        for c in spec["containers"]:
            if c.get("imagePullPolicy") != "IfNotPresent":
                fail(f"{name}: container {c['name']} pulls {c.get('imagePullPolicy')}, versioned tags want IfNotPresent")
            tag = c["image"].rsplit(":", 1)[1] if ":" in c["image"].rsplit("/", 1)[-1] else None
            if tag not in (None, "dev") and tag != version:
                fail(f"{name}: image tag {tag} is not the release {version}")
            env = {e["name"]: e for e in c.get("env", [])}
            args = args_of(c)
            if job.get("completionMode") == "Indexed":
                count = env.get("SHARD_COUNT", {}).get("value")
                if str(count) != str(job.get("completions")):
                    fail(f"{name}: SHARD_COUNT {count} must equal completions {job.get('completions')} (each pod takes its share)")
            # SIGTERM to exit is bounded by --shutdown-timeout (SHUTDOWN_TIMEOUT; the flush and the trace export
            # included); Kubernetes kills at the grace period: keep a margin of at least 5 s between them.
            shutdown = option(args, "--shutdown-timeout") or env.get("SHUTDOWN_TIMEOUT", {}).get("value") or 20
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if int(grace) < int(shutdown) + 5:
                fail(f"{name}: terminationGracePeriodSeconds {grace} leaves less than 5 s above --shutdown-timeout {shutdown}")
            if obj["kind"] == "Job" and args[:1] == ["klines"]:
                days = option(args, "--max-catch-up-days")
                if days is None or int(days) < 3650:
                    fail(f"{name}: a backfill Job must reach its end in one run: --max-catch-up-days {days} (want 3650)")

    # `follow` Deployments: probes on the health port, no gap in a rollout, a shutdown margin, the stream port open.
    stream_ports = {"spot": 9443, "futures": 443, "coinm": 443}
    egress_ports = {p.get("port") for pol in by_kind.get("NetworkPolicy", []) if pol["metadata"]["name"] == "binance-extractor"
                    for rule in pol.get("spec", {}).get("egress", []) for p in rule.get("ports", [])}
    for obj in by_kind.get("Deployment", []):
        name = f"Deployment/{obj['metadata']['name']}"
        spec = obj["spec"]["template"]["spec"]
        pod_labels = obj["spec"]["template"].get("metadata", {}).get("labels", {})
        missing = [k for k in REQUIRED_LABELS if k not in pod_labels]
        if missing:
            fail(f"{name}: its pods lack labels {missing}")
        for c in spec["containers"]:
            args = args_of(c)
            if args[:1] != ["follow"]:
                continue
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if c.get("imagePullPolicy") != "IfNotPresent":
                fail(f"{name}: container {c['name']} pulls {c.get('imagePullPolicy')}, versioned tags want IfNotPresent")
            tag = c["image"].rsplit(":", 1)[1] if ":" in c["image"].rsplit("/", 1)[-1] else None
            if tag not in (None, "dev") and tag != version:
                fail(f"{name}: image tag {tag} is not the release {version}")
            port = option(args, "--health-port") or env.get("HEALTH_PORT")
            if port is None:
                fail(f"{name}: follow without --health-port serves no probes")
                continue
            named = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}

            def probe_port(probe):
                value = probe.get("httpGet", {}).get("port")
                return named.get(value) if isinstance(value, str) else value

            for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                probe = c.get(kind) or {}
                if probe.get("httpGet", {}).get("path") != path or str(probe_port(probe)) != str(port):
                    fail(f"{name}: {kind} must GET {path} on the health port {port}")
            rolling = obj["spec"].get("strategy", {})
            if rolling.get("type", "RollingUpdate") != "RollingUpdate" or str(rolling.get("rollingUpdate", {}).get("maxUnavailable", "25%")) not in ("0", "0%"):
                fail(f"{name}: a rollout must start the new follower before stopping the old (RollingUpdate, maxUnavailable 0)")
            shutdown = option(args, "--shutdown-timeout") or env.get("SHUTDOWN_TIMEOUT") or 20
            if int(spec.get("terminationGracePeriodSeconds", 30)) < int(shutdown) + 5:
                fail(f"{name}: terminationGracePeriodSeconds leaves less than 5 s above --shutdown-timeout {shutdown}")
            market = option(args, "--market") or "futures"
            if by_kind.get("NetworkPolicy") and stream_ports.get(market) not in egress_ports:
                fail(f"{name}: NetworkPolicy binance-extractor does not open {market}'s stream port {stream_ports.get(market)}")

    # The archive spool: a writable /tmp (or TMPDIR) wherever the root filesystem is read-only.
    for obj in jobs + by_kind.get("Deployment", []):
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "binance-extractor":
            continue  # the development collector has no spool
        spec = pod_spec(obj)[1]["spec"] if obj["kind"] != "Deployment" else obj["spec"]["template"]["spec"]
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
                continue
            tmpdir = next((e.get("value") for e in c.get("env", []) if e["name"] == "TMPDIR"), None) or "/tmp"
            if not any(m.get("mountPath") == tmpdir and m.get("name") in volumes and not m.get("readOnly") for m in c.get("volumeMounts", [])):
                fail(f"{obj['kind']}/{obj['metadata']['name']}: container {c['name']} has a read-only root filesystem and no writable {tmpdir} for the archive spool")

    # The nightly gaps jobs cover every kline table the klines CronJobs fill: (market, series, timeframe).
    def tables(args):
        market = option(args, "--market") or "futures"
        series = (option(args, "--series") or "trade").split(",")
        frames = (option(args, "--timeframes") or option(args, "--timeframe") or option(args, "--period") or "").split(",")
        return {(market, s, f) for s in series for f in frames if f}

    filled, checked, metrics, metrics_checked = set(), set(), False, False
    for obj in by_kind.get("CronJob", []):
        for c in pod_spec(obj)[1]["spec"]["containers"]:
            args = args_of(c)
            if args[:1] == ["klines"]:
                filled |= tables(args)
            if args[:1] == ["metrics"]:
                metrics = True
            if args[:1] == ["gaps"]:
                if "--metrics" in args:
                    metrics_checked = True
                else:
                    checked |= tables(args)
    if filled and not filled <= checked:
        missing = sorted(filled - checked)
        fail(f"the gaps CronJobs check {sorted(checked)} but the klines CronJobs fill {sorted(filled)}: missing {missing}")
    if metrics and not metrics_checked:
        fail("a metrics CronJob fills futures_metrics but no gaps CronJob runs gaps --metrics")

    # Destinations: one NetworkPolicy each, and what is configured is reachable and exists.
    # (An overlay's CronJobs come with the policies; the scale-out Job runs in an overlay's namespace, under its policies.)
    policies = {p["metadata"]["name"]: p for p in by_kind.get("NetworkPolicy", [])}
    if by_kind.get("CronJob"):
        for policy in ("binance-extractor", "binance-extractor-database", "binance-extractor-telemetry"):
            if policy not in policies:
                fail(f"NetworkPolicy {policy} is missing")

        def ports(policy):
            return {p.get("port") for rule in policies.get(policy, {}).get("spec", {}).get("egress", []) for p in rule.get("ports", [])}

        config = {}
        for cm in by_kind.get("ConfigMap", []):
            if cm["metadata"]["name"].startswith("binance-extractor-config"):
                config.update(cm.get("data", {}))
        endpoint = config.get("OTEL_EXPORTER_OTLP_ENDPOINT") or config.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if endpoint:
            url = urlparse(endpoint)
            host = (url.hostname or "").split(".")[0]
            port = url.port or (443 if url.scheme == "https" else 80)
            services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
            in_cluster = "." not in (url.hostname or "") or (url.hostname or "").endswith(".svc") or ".svc." in (url.hostname or "")
            if in_cluster and (host not in services or port not in {p["port"] for p in services[host]["spec"]["ports"]}):
                fail(f"OTEL_EXPORTER_OTLP_ENDPOINT {endpoint} names a collector this rendering does not deploy: every run would pay the export timeout")
            if port not in ports("binance-extractor-telemetry"):
                fail(f"the collector's port {port} ({endpoint}) is not opened by NetworkPolicy binance-extractor-telemetry")
        for secret in by_kind.get("Secret", []):
            data = secret.get("stringData") or {}
            uri = data.get("DATABASE_URL") or data.get("MYSQL_URI")
            if uri:
                url = urlparse(uri.replace("mysql+pymysql", "mysql"))
                port = url.port or (5432 if url.scheme.startswith("postgres") else 3306)
                if port not in ports("binance-extractor-database"):
                    fail(f"Secret {secret['metadata']['name']}'s database port {port} is not opened by NetworkPolicy binance-extractor-database")
        # The store the overlay declares: its default port must be open (a managed database on another port is an
        # overlay's deliberate choice, written in its destinations.yaml with that port).
        adapter = (config.get("DB_ADAPTER") or "mysql").lower()
        default_port = 5432 if adapter.startswith("postgres") else 3306
        if not by_kind.get("Secret") and default_port not in ports("binance-extractor-database"):
            fail(f"DB_ADAPTER={adapter}, but NetworkPolicy binance-extractor-database does not open {default_port}")
    return problems


def license_problems(license_label):
    path = ROOT / "LICENSE"
    if not path.exists():
        return ["LICENSE is missing (the image's org.opencontainers.image.licenses says " + license_label + ")"]
    text = path.read_text()
    known = {"Apache-2.0": ("Apache License", "Version 2.0"), "MIT": ("MIT License",)}
    marks = known.get(license_label)
    if marks is None or not all(m in text[:400] for m in marks):
        return [f"LICENSE is not the {license_label} license the image's label names"]
    return []


def load(arguments):
    rendered = []
    for argument in arguments:
        where, file = argument.split("=", 1)
        rendered.append((where, [d for d in yaml.safe_load_all(Path(file).read_text()) if d]))
    return rendered


def self_test(rendered, version, license_label):
    """Each check must catch a manifest broken on purpose: a check that cannot fail proves nothing."""
    production = next(docs for where, docs in rendered if where == "k8s/overlays/production")
    local = next(docs for where, docs in rendered if where == "k8s/overlays/local")
    scale = next(docs for where, docs in rendered if where == "k8s/scale-out")
    postgres = next(docs for where, docs in rendered if where == "k8s/overlays/postgresql")

    def cronjob(docs, name):
        return next(d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"] == name)

    def deployment(docs, name):
        return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)

    def breaks(docs, mutate):
        docs = copy.deepcopy(docs)
        mutate(docs)
        return docs

    def container(obj):
        return pod_spec(obj)[1]["spec"]["containers"][0]

    cases = {
        "no podFailurePolicy": breaks(production, lambda d: pod_spec(cronjob(d, "klines-15m"))[0].pop("podFailurePolicy")),
        "pull Always": breaks(production, lambda d: container(cronjob(d, "klines-1h")).update(imagePullPolicy="Always")),
        "another tag": breaks(production, lambda d: container(cronjob(d, "klines-1h")).update(image="x/binance-extractor:9.9.9")),
        "no instance label": breaks(production, lambda d: cronjob(d, "funding")["metadata"]["labels"].pop("app.kubernetes.io/instance")),
        "gaps misses 5m": breaks(production, lambda d: container(cronjob(d, "gaps-nightly")).update(args=["gaps", "--timeframes", "15m,30m,1h,1d"])),
        "gaps misses the mark series": breaks(production, lambda d: container(cronjob(d, "gaps-prices-nightly")).update(
            args=["gaps", "--series", "index,premium", "--timeframes", "1h"])),
        "gaps misses COIN-M": breaks(production, lambda d: container(cronjob(d, "coinm-gaps-nightly")).update(
            args=["gaps", "--timeframes", "1h", "--symbols", "BTCUSD_PERP"])),
        "no gaps --metrics": breaks(production, lambda d: container(cronjob(d, "gaps-metrics-nightly")).update(args=["gaps", "--timeframes", "1h"])),
        "collector not deployed": breaks(production, lambda d: next(c for c in d if c["kind"] == "ConfigMap")["data"]
                                         .update(OTEL_EXPORTER_OTLP_ENDPOINT="http://otel-collector:4318")),
        "database port closed": breaks(local, lambda d: next(c for c in d if c["kind"] == "Secret")["stringData"]
                                       .update(MYSQL_URI="mysql://u:p@mariadb:3307/market")),
        "no SHARD_COUNT": breaks(scale, lambda d: [c for c in d if c["kind"] == "Job"][0]["spec"]["template"]["spec"]["containers"][0]
                                 .update(env=[])),
        "postgresql on 3306": breaks(postgres, lambda d: next(p for p in d if p["kind"] == "NetworkPolicy"
                                                               and p["metadata"]["name"] == "binance-extractor-database")["spec"]["egress"][0]["ports"][0]
                                    .update(port=3306)),
        "no shutdown margin": breaks(production, lambda d: pod_spec(cronjob(d, "klines-1h"))[1]["spec"].update(terminationGracePeriodSeconds=20)),
        "follow without readiness": breaks(production, lambda d: deployment(d, "follow-futures")["spec"]["template"]["spec"]["containers"][0]
                                           .pop("readinessProbe")),
        "follow probed elsewhere": breaks(production, lambda d: deployment(d, "follow-coinm")["spec"]["template"]["spec"]["containers"][0]
                                          ["livenessProbe"]["httpGet"].update(port=9090)),
        "follow rollout with a gap": breaks(production, lambda d: deployment(d, "follow-spot")["spec"].update(strategy={"type": "Recreate"})),
        "spot stream port closed": breaks(production, lambda d: next(p for p in d if p["kind"] == "NetworkPolicy"
                                                                     and p["metadata"]["name"] == "binance-extractor")["spec"]["egress"][1]
                                          .update(ports=[{"protocol": "TCP", "port": 443}])),
        "no spool folder": breaks(production, lambda d: container(cronjob(d, "klines-1d")).pop("volumeMounts")),
        "capped backfill": breaks(scale, lambda d: [c for c in d if c["kind"] == "Job"][0]["spec"]["template"]["spec"]["containers"][0]
                                  .update(args=["klines", "--timeframes", "1m", "--from-listing"])),
    }
    where = {"database port closed": "k8s/overlays/local", "no SHARD_COUNT": "k8s/scale-out", "capped backfill": "k8s/scale-out",
             "postgresql on 3306": "k8s/overlays/postgresql"}
    missed = [name for name, docs in cases.items() if not check(where.get(name, "k8s/overlays/production"), docs, version, license_label)]
    for name in missed:
        print(f"SELF-TEST FAIL: the check did not catch: {name}")
    print(f"k8s policy self-test: {len(cases) - len(missed)} of {len(cases)} broken manifests caught")
    return not missed


def main():
    arguments = sys.argv[1:]
    testing = arguments[:1] == ["--self-test"]
    if testing:
        arguments = arguments[1:]
    version = release_version()
    label = re.search(r'org\.opencontainers\.image\.licenses="([^"]+)"', (ROOT / "Dockerfile").read_text())
    license_label = label.group(1) if label else "(none)"
    rendered = load(arguments)
    if testing:
        sys.exit(0 if self_test(rendered, version, license_label) else 1)
    problems = license_problems(license_label)
    for where, docs in rendered:
        problems += check(where, docs, version, license_label)
    for p in problems:
        print("FAIL " + p)
    print(f"k8s policy: {len(rendered)} renderings checked against the manifests' promises, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
