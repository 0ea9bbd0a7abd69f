"""The container and Kubernetes files agree with the server they run: the
probes hit real routes, ports and defaults match the config, the grace
period covers the drain. No Docker engine or cluster runs here: these check
the files, hadolint and yamllint (see the README) check their form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.clients import http
from replaywire import Server
from replaywire.config import Config, knobs

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KNOB_ENV = {f.name.upper() for f in knobs()}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def k8s(kind: str) -> dict[str, Any]:
    found = [
        doc for p in sorted(K8S.glob("*.yaml")) if (doc := load(p)) and doc.get("kind") == kind
    ]
    assert len(found) == 1, kind
    return found[0]


def container() -> dict[str, Any]:
    [c] = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def probe_paths() -> set[str]:
    c = container()
    paths = {c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    compose = load(ROOT / "docker-compose.yml")["services"]["replaywire"]["healthcheck"]["test"]
    paths |= set(re.findall(r"/health[\w/]*", " ".join(compose)))
    for word, rest in dockerfile():
        if word == "HEALTHCHECK":
            paths |= set(re.findall(r"/health[\w/]*", rest))
    return paths


async def test_every_probe_path_answers_200_on_a_real_server(server: Server) -> None:
    paths = probe_paths()
    assert paths == {"/health/live", "/health/ready"}
    for path in paths:
        status, _, _ = await http(server, path)
        assert status == 200, path


def test_dockerfile_runs_non_root_with_healthcheck_and_stopsignal() -> None:
    instructions = dockerfile()
    words = [word for word, _ in instructions]
    assert words.count("FROM") >= 3  # rust toolchain, wheel build, runtime
    assert "maturin build" in " ".join(rest for word, rest in instructions if word == "RUN")
    user = [rest for word, rest in instructions if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert [rest for word, rest in instructions if word == "STOPSIGNAL"] == ["SIGTERM"]
    [healthcheck] = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    assert "/health/live" in healthcheck
    [expose] = [rest for word, rest in instructions if word == "EXPOSE"]
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert f"PORT={expose}" in env and "HOST=0.0.0.0" in env
    uid = user[-1].split(":")[0]
    assert k8s("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_deployment_ports_probes_and_grace_period() -> None:
    config = k8s("ConfigMap")["data"]
    c = container()
    [port] = c["ports"]
    assert port["containerPort"] == int(config["PORT"]) == Config().port
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] == port["name"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    drain = float(config.get("DRAIN_SECONDS", Config().drain_seconds))
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(pre_stop[1]) if pre_stop[0] == "sleep" else 0.0
    grace = k8s("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > drain + pause
    refs = {ref[key]["name"] for ref in c["envFrom"] for key in ref}
    assert refs == {k8s("ConfigMap")["metadata"]["name"], k8s("Secret")["metadata"]["name"]}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert config["SPOOL_DIR"].startswith("/data/") and "/data" in mounts


def test_configmap_and_secret_hold_only_real_settings() -> None:
    config = k8s("ConfigMap")["data"]
    secret = k8s("Secret")["stringData"]
    assert set(config) <= KNOB_ENV, set(config) - KNOB_ENV
    assert set(secret) <= KNOB_ENV | {"TENANTS"} and "DATABASE_URL" in secret
    assert "TENANTS" in secret  # the image listens on 0.0.0.0: no development mode
    assert not set(config) & set(secret)
    Config.from_env({**config, **secret})  # every value valid


def test_service_and_pdb_select_the_pods() -> None:
    labels = k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert k8s("Deployment")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = k8s("Service")["spec"]
    assert service["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["ports"]] == [container()["ports"][0]["name"]]
    pdb = k8s("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < k8s("Deployment")["spec"]["replicas"]


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(load(K8S / "kustomization.yaml")["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == files


@pytest.mark.parametrize(("service", "major"), [("postgres", "16"), ("redis", "7")])
def test_compose_gates_the_start_on_healthy_dependencies(service: str, major: str) -> None:
    services = load(ROOT / "docker-compose.yml")["services"]
    assert re.match(rf"{service}:{major}(\.|-|$)", services[service]["image"])
    assert services[service]["healthcheck"]["test"]
    depends = services["replaywire"]["depends_on"]
    assert depends[service] == {"condition": "service_healthy"}


def test_compose_runs_the_image_with_valid_settings_and_room_to_drain() -> None:
    app = load(ROOT / "docker-compose.yml")["services"]["replaywire"]
    env = {k: re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", str(v)) for k, v in app["environment"].items()}
    config = Config.from_env({"HOST": "0.0.0.0", **env})  # HOST from the image
    assert config.database_url.startswith("postgresql://")
    # Development mode on 0.0.0.0, published on the host's loopback only.
    assert config.dev_mode and config.dev_mode_any_host
    assert app["ports"] == [f"127.0.0.1:{Config().port}:{Config().port}"]
    assert app["stop_signal"] == "SIGTERM"
    assert float(app["stop_grace_period"].rstrip("s")) > config.drain_seconds
