"""Deployment artefacts cannot rot: the Dockerfile, compose file, manifests, alerts and dashboard are checked
against what the service really reads, serves and exports. (No Docker engine here: checks are static.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import load_file_config
from service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ROUTES = {"/v1/tokens", "/v1/profiles", "/healthz", "/readyz", "/metrics"}
SECRETISH = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.IGNORECASE)


def env_vars_the_service_reads() -> set[str]:
    """Every LIVETOKEN_* name in the service's source, plus the hs256_secret_env names of the shipped configs."""
    names: set[str] = set()
    for path in (ROOT / "service").rglob("*.py"):
        names |= set(re.findall(r"LIVETOKEN_[A-Z_]+[A-Z]", path.read_text()))
    names |= {f"{n}_FILE" for n in ("LIVETOKEN_GEMINI_API_KEY", "LIVETOKEN_REDIS_URL")}
    for config in (ROOT / "deploy" / "livetoken.toml", ROOT / "deploy" / "compose" / "livetoken.toml"):
        names |= {i.hs256_secret_env for i in load_file_config(config).issuers if i.hs256_secret_env}
    return names


def exported_metric_names() -> set[str]:
    """Sample names the app's registry exposes (counters with _total, histograms with _bucket/_sum/_count…)."""
    metrics = Metrics()
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        suffixes = {
            "counter": ["_total", "_created"],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            "info": ["_info"],
            "gauge": [""],
        }[family.type]
        names |= {family.name + s for s in suffixes}
    return names


def metric_names_in(expr: str) -> set[str]:
    """livetoken_* identifiers in a PromQL expression."""
    return set(re.findall(r"\blivetoken_[a-z_]+\b", expr))


def k8s_docs() -> dict[str, dict[str, Any]]:
    """Every manifest listed in kustomization.yaml, by kind."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            docs[doc["kind"]] = doc
    return docs


# --- Dockerfile ---------------------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_is_multistage_slim_and_non_root() -> None:
    """Two stages; the final one is slim, runs as a numeric non-root user, and has a /healthz HEALTHCHECK."""
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert "slim" in final[0]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    health = [line for line in final if line.upper().startswith("HEALTHCHECK")]
    assert health
    assert "/healthz" in health[0]
    assert any(line.upper().startswith("EXPOSE 8080") for line in final)
    assert not any(re.search(r"\b(gcc|build-essential|apt-get install)\b", line) for line in final)


def test_dockerfile_holds_no_secrets() -> None:
    """No ENV or ARG sets anything that looks like a key, secret, token or password."""
    for stage in dockerfile_stages():
        for line in stage:
            if line.upper().startswith(("ENV ", "ARG ")):
                for name, _, _value in re.findall(r"([A-Z_][A-Z0-9_]*)(=)(\S*)", line):
                    assert not SECRETISH.search(name.removeprefix("LIVETOKEN_")), line


def test_dockerfile_commands_exist_in_the_project() -> None:
    """The entry point is a [project.scripts] entry, COPY sources exist, and the config path is the documented one."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    stages = dockerfile_stages()
    final = stages[-1]
    entry = next(line for line in final if line.upper().startswith("ENTRYPOINT"))
    assert json.loads(entry.split(None, 1)[1])[0] in scripts
    cmd = json.loads(next(line for line in final if line.upper().startswith("CMD")).split(None, 1)[1])
    assert cmd[0] == "serve"
    for stage in stages:
        for line in stage:
            if line.upper().startswith("COPY ") and "--from" not in line:
                for src in line.split()[1:-1]:
                    assert (ROOT / src).exists(), src
    assert any("LIVETOKEN_CONFIG=/etc/livetoken/livetoken.toml" in line for line in final)


# --- compose ------------------------------------------------------------------------------------------------


def test_compose_uses_only_variables_the_service_reads() -> None:
    """Every LIVETOKEN_* variable in docker-compose.yml is one the service (or emulator) reads."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = env_vars_the_service_reads()
    used: set[str] = set()
    for svc in compose["services"].values():
        used |= {k for k in (svc.get("environment") or {}) if k.startswith("LIVETOKEN_")}
    assert used
    assert used <= known, used - known


def test_compose_wires_service_redis_emulator_prometheus() -> None:
    """The services (tracing's are checked in tests/tracing/test_deploy.py); ports and paths match the configs."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "emulator", "livetoken", "prometheus", "otel-collector", "jaeger"}
    svc_env = services["livetoken"]["environment"]
    assert svc_env["LIVETOKEN_REDIS_URL"].startswith("redis://redis:6379")
    port = load_file_config(ROOT / "deploy" / "compose" / "livetoken.toml").server.port
    assert f"{port}:{port}" in services["livetoken"]["ports"]
    emulator_port = services["emulator"]["command"][services["emulator"]["command"].index("--port") + 1]
    assert svc_env["LIVETOKEN_GEMINI_BASE_URL"] == f"https://emulator:{emulator_port}"
    assert "emulator" in services["emulator"]["command"]  # --san emulator: the TLS name the service uses
    for svc in services.values():
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), src
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [f"livetoken:{port}"]


# --- Kubernetes ---------------------------------------------------------------------------------------------


def test_manifests_have_every_required_kind() -> None:
    """Deployment, Service, HPA, PDB, NetworkPolicy, ConfigMap, ServiceMonitor and PrometheusRule."""
    kinds = set(k8s_docs())
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds


def test_configmap_equals_the_example_config() -> None:
    """The ConfigMap carries deploy/livetoken.toml byte for byte."""
    cm = k8s_docs()["ConfigMap"]
    assert cm["data"]["livetoken.toml"] == (ROOT / "deploy" / "livetoken.toml").read_text()


def test_deployment_is_hardened_and_probes_real_routes() -> None:
    """Probes hit /healthz and /readyz; non-root, read-only root fs, no privilege escalation, caps dropped."""
    dep = k8s_docs()["Deployment"]["spec"]["template"]["spec"]
    container = dep["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in ROUTES
    assert dep["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    grace = load_file_config(ROOT / "deploy" / "livetoken.toml").server.shutdown_grace
    assert dep["terminationGracePeriodSeconds"] > grace
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= env_vars_the_service_reads()
    assert "secretKeyRef" in env["LIVETOKEN_REDIS_URL"]["valueFrom"]
    assert "LIVETOKEN_GEMINI_API_KEY" not in env  # a file from a Secret volume instead: it can be rotated


def test_the_api_key_file_comes_from_a_secret_volume_the_kubelet_updates() -> None:
    """LIVETOKEN_GEMINI_API_KEY_FILE names a file of a Secret volume mounted whole (a subPath mount is never
    updated, so a rotation would need a restart), readable by the pod's group, holding a key the example Secret
    defines."""
    spec = k8s_docs()["Deployment"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    path = Path({e["name"]: e for e in container["env"]}["LIVETOKEN_GEMINI_API_KEY_FILE"]["value"])
    mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent)
    assert "subPath" not in mount
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])["secret"]
    assert [item["path"] for item in volume["items"]] == [path.name]
    assert volume["defaultMode"] & 0o040  # group-readable: the files are root-owned with the pod's fsGroup
    assert not volume["defaultMode"] & 0o007
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert volume["secretName"] == example["metadata"]["name"]
    assert [item["key"] for item in volume["items"]] == ["gemini-api-keys"]
    assert "gemini-api-keys" in example["stringData"]


def test_network_policy_limits_ingress_and_egress() -> None:
    """Ingress only on 8080; egress only DNS, Redis and HTTPS."""
    spec = k8s_docs()["NetworkPolicy"]["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == [8080]
    assert {p["port"] for rule in spec["egress"] for p in rule["ports"]} == {53, 6379, 443}


def test_no_secret_values_in_manifests() -> None:
    """Manifests reference Secrets; the only Secret in the repo is a placeholder example."""
    for path in K8S.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Secret":
                assert path.name == "secret.example.yaml"
                assert all(v.startswith(("<", "rediss://:<")) for v in doc["stringData"].values())


# --- alerts and dashboard -----------------------------------------------------------------------------------


def test_prometheus_rule_equals_the_compose_rules_and_names_real_metrics() -> None:
    """The PrometheusRule and the compose rules file carry the same alerts; every expression uses real metrics."""
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "livetoken-alerts.yml").read_text())
    assert k8s_docs()["PrometheusRule"]["spec"] == rules
    exported = exported_metric_names()
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "LivetokenUpstreamErrors",
        "LivetokenServerErrors",
        "LivetokenRateLimitSpike",
        "LivetokenRedisFallbackActive",
        "LivetokenJWKSRefreshFailing",
    } <= set(alerts)
    readme = (ROOT / "docs" / "operations" / "alerts.md").read_text().lower()
    for name, rule in alerts.items():
        used = metric_names_in(rule["expr"])
        assert used
        assert used <= exported, (name, used - exported)
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations/alerts.md"
        assert anchor.startswith("alert-")
        assert f'id="{anchor}"' in readme, f"docs/operations/alerts.md lacks a section for {anchor}"


def test_dashboard_queries_name_real_metrics() -> None:
    """Every Grafana panel query names only metrics the service exports."""
    dash = json.loads((ROOT / "deploy" / "grafana" / "livetoken-dashboard.json").read_text())
    exported = exported_metric_names()
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        used = metric_names_in(expr)
        assert used
        assert used <= exported, (expr, used - exported)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "deploy").rglob("*.y*ml")))
def test_yaml_files_parse(path: str) -> None:
    """Every YAML file under deploy/ parses."""
    assert list(yaml.safe_load_all((ROOT / path).read_text()))


async def test_dashboard_and_alert_metrics_appear_in_a_live_scrape(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Scrape /metrics of the running app: every metric the dashboard and alerts use is announced there."""
    from tests.support.service import auth, build_settings, running_app, service_env, write_config

    settings = build_settings(write_config(tmp_path), service_env(emulator, redis_url))
    async with running_app(settings) as client:
        await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
        text = (await client.get("/metrics")).text
    announced = set(re.findall(r"^# TYPE (livetoken_[a-z_]+) (\w+)", text, flags=re.M))
    families = {name for name, _ in announced}
    dash = json.loads((ROOT / "deploy" / "grafana" / "livetoken-dashboard.json").read_text())
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "livetoken-alerts.yml").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    for expr in exprs:
        for name in metric_names_in(expr):
            base = re.sub(r"_(total|bucket|sum|count|created|info)$", "", name)
            assert base in families or name in families, (name, expr)


def test_every_artifact_names_the_version_pyproject_gives() -> None:
    """pyproject's version is what `livetoken --version` prints, the image's label, the tag compose builds and
    Kubernetes runs, the API document's version, and the newest release in CHANGELOG.md."""
    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "livetoken"), "--version"], capture_output=True, text=True, check=True
    )
    assert cli.stdout == f"livetoken {release}\n"
    assert f'org.opencontainers.image.version="{release}"' in (ROOT / "Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {compose["services"][name]["image"] for name in ("livetoken", "emulator")} == {f"livetoken:{release}"}
    containers = k8s_docs()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert [c["image"].rpartition(":")[2] for c in containers] == [release]
    assert yaml.safe_load((ROOT / "openapi.yaml").read_text())["info"]["version"] == release
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.MULTILINE)[1] == release  # type: ignore[index]
