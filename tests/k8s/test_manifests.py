"""deploy/k8s, checked offline (no cluster here): both overlays render with kustomize; every
object validates strictly against the three newest Kubernetes versions kubernetes-validate
knows; the KEDA and Gateway API objects against their projects' own CRD schemas, vendored; checkov
finds nothing (each skip is justified in an annotation); the manifests agree with the services
they run, the Gateway's routes with the gateway's route table, and every egress rule names its
destination."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pytest import TempPathFactory

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
TOOLS = REPO / ".tools" / "k8s"
CRDS = Path(__file__).parent / "keda-crds"
GATEWAY_CRDS = Path(__file__).parent / "gateway-crds"
OVERLAYS = ["local", "production"]
PACKAGES = {
    "storage-service": "storage_service",
    "song-service": "song_service",
    "resource-service": "resource_service",
    "resource-processor": "resource_processor",
}
pytestmark = pytest.mark.timeout(600)  # a fresh machine installs the tools first


@pytest.fixture(scope="session")
def tools() -> Path:
    """kubectl, kubernetes-validate and checkov, in a venv of their own."""
    bin_dir = TOOLS / "bin"
    marker = TOOLS / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        requirements = Path(__file__).parent / "requirements.txt"
        subprocess.run([str(bin_dir / "pip"), "install", "-q", "-r", str(requirements)], check=True)
        marker.touch()
    return bin_dir


@pytest.fixture(scope="session")
def rendered(tools: Path, tmp_path_factory: TempPathFactory) -> dict[str, Path]:
    """Each overlay, rendered from a copy where the local overlay's env files are its examples."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy)
    for example in (copy / "overlays" / "local").glob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    out = {}
    for overlay in OVERLAYS:
        built = subprocess.run(
            [str(tools / "kubectl"), "kustomize", str(copy / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
        )
        out[overlay] = copy / f"{overlay}.yaml"
        out[overlay].write_text(built.stdout)
    return out


def objects(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def newest_versions(tools: Path, count: int = 3) -> list[str]:
    listed = subprocess.run(
        [str(tools / "python"), "-c", "import kubernetes_validate, os;"
         "print(os.listdir(os.path.join(os.path.dirname(kubernetes_validate.__file__),"
         " 'kubernetes-json-schema')))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = {tuple(map(int, v)) for v in re.findall(r"v(\d+)\.(\d+)\.(\d+)-local-strict", listed)}
    return [".".join(map(str, v)) for v in sorted(found)[-count:]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_strictly_on_the_newest_kubernetes(
    tools: Path, rendered: dict[str, Path], overlay: str
) -> None:
    versions = newest_versions(tools)
    assert len(versions) == 3
    for version in versions:
        checked = subprocess.run(
            [str(tools / "kubernetes-validate"), "--strict", "-k", version, str(rendered[overlay])],
            capture_output=True,
            text=True,
        )
        output = checked.stdout + checked.stderr
        assert checked.returncode == 0, output
        unknown = [ln for ln in output.splitlines() if "Couldn't find schema" in ln]
        # KEDA's and the Gateway API's: checked against their own CRDs below.
        assert all(re.search(r"keda\.sh|gateway\.(networking\.k8s\.io|nginx\.org)", line)
                   for line in unknown), unknown  # fmt: skip


def crd_schemas(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema, for every version each CRD serves. The
    CEL rules (`x-kubernetes-validations`) need an API server; they are not checked here."""
    schemas = {}
    for crd_file in folder.glob("*_*.yaml"):
        crd = yaml.safe_load(crd_file.read_text())
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            kind = crd["spec"]["names"]["kind"]
            schemas[api_version, kind] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_the_keda_objects_validate_against_kedas_crds(rendered: dict[str, Path]) -> None:
    schemas = crd_schemas(CRDS)
    keda = [o for o in objects(rendered["production"]) if o["apiVersion"].startswith("keda.sh/")]
    assert sorted(o["kind"] for o in keda) == ["ScaledObject", "TriggerAuthentication"]
    for obj in keda:
        jsonschema.validate(obj, schemas[obj["apiVersion"], obj["kind"]])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_objects_validate_against_their_crds(
    rendered: dict[str, Path], overlay: str
) -> None:
    """The Gateway API's own CRDs (standard channel) and NGINX Gateway Fabric's policies."""
    schemas = crd_schemas(GATEWAY_CRDS)
    found = [o for o in objects(rendered[overlay]) if o["apiVersion"].startswith("gateway.")]
    assert sorted(o["kind"] for o in found) == [
        "ClientSettingsPolicy", "ClientSettingsPolicy", "Gateway", "HTTPRoute", "HTTPRoute",
        "RateLimitPolicy",
    ]  # fmt: skip
    for obj in found:
        jsonschema.validate(obj, schemas[obj["apiVersion"], obj["kind"]])
    assert not [o for o in objects(rendered[overlay]) if o["kind"] == "Ingress"]


def route_table_of(objs: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """(method, path match type, path, service) for every match of every HTTPRoute."""
    table = set()
    for route in (o for o in objs if o["kind"] == "HTTPRoute"):
        for rule in route["spec"]["rules"]:
            (backend,) = rule["backendRefs"]
            for match in rule["matches"]:
                path = match["path"]
                table.add((match["method"], path["type"], path["value"], backend["name"]))
    return table


def test_the_gateway_routes_are_the_gateways_route_table(rendered: dict[str, Path]) -> None:
    """deploy/k8s routes exactly what devstack/gateway.py's ROUTES route under `make run`."""
    from devstack.gateway import ROUTES

    kinds = {"=": "Exact", "~": "RegularExpression"}
    services = {"resource": "resource-service", "song": "song-service"}
    expected = {
        (method, kinds[route.location.split()[0]], route.location.split()[1],
         services[route.upstream])
        for route in ROUTES
        for method in route.methods
    }  # fmt: skip
    assert route_table_of(objects(rendered["production"])) == expected


def size_in_bytes(size: str) -> int:
    power = " kmg".index(size[-1] if size[-1] in "kmg" else " ")
    return int(size.rstrip("kmg")) << 10 * power  # times 1024 ** power


def test_the_gateways_body_limits_are_the_services_limits(rendered: dict[str, Path]) -> None:
    from resource_service.config import Settings

    settings = Settings()
    policies = {
        o["spec"]["targetRef"]["kind"]: o
        for o in objects(rendered["production"])
        if o["kind"] == "ClientSettingsPolicy"
    }
    assert size_in_bytes(policies["Gateway"]["spec"]["body"]["maxSize"]) == settings.max_json_bytes
    upload = policies["HTTPRoute"]
    assert size_in_bytes(upload["spec"]["body"]["maxSize"]) == settings.max_upload_bytes
    (upload_route,) = [
        r for r in objects(rendered["production"])
        if r["kind"] == "HTTPRoute" and r["metadata"]["name"] == upload["spec"]["targetRef"]["name"]
    ]  # fmt: skip
    assert ("POST", "/resources", "resource-service") in {
        (method, path, service) for method, _, path, service in route_table_of([upload_route])
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_egress_rule_names_its_destination(rendered: dict[str, Path], overlay: str) -> None:
    policies = [o for o in objects(rendered[overlay]) if o["kind"] == "NetworkPolicy"]
    egress = [(p["metadata"]["name"], r) for p in policies for r in p["spec"].get("egress", [])]
    assert egress
    assert [name for name, rule in egress if not rule.get("to")] == []
    # Each service reaches its stores: four policies, one per service, in every overlay.
    assert {p["metadata"]["name"] for p in policies if p["metadata"]["name"].endswith(
        "-to-infrastructure")} == {f"{name}-to-infrastructure" for name in PACKAGES}  # fmt: skip


def test_checkov_finds_nothing(tools: Path, rendered: dict[str, Path]) -> None:
    checked = subprocess.run(
        [str(tools / "checkov"), "--framework", "kubernetes", "--skip-download", "--compact",
         "--quiet", "--output", "json", *(f"--file={p}" for p in rendered.values())],
        capture_output=True, text=True,
    )  # fmt: skip
    report = json.loads(checked.stdout)
    summaries = [r["summary"] for r in (report if isinstance(report, list) else [report])]
    assert sum(s["failed"] for s in summaries) == 0, checked.stdout[-3000:]
    assert sum(s["passed"] for s in summaries) > 500


def settings_of(package: str) -> Any:
    return importlib.import_module(f"{package}.config").Settings


PROBES = {
    "startupProbe": "/health/live",
    "livenessProbe": "/health/live",
    "readinessProbe": "/health/ready",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_manifests_agree_with_the_services(rendered: dict[str, Path], overlay: str) -> None:
    deployments = [o for o in objects(rendered[overlay]) if o["kind"] == "Deployment"]
    found = {o["metadata"]["name"]: o for o in deployments}
    for name, package in PACKAGES.items():
        settings = settings_of(package)
        container = found[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].startswith(f"song-platform/{name}:")
        assert container["ports"][0]["containerPort"] == settings.model_fields["port"].default
        assert {k: container[k]["httpGet"]["path"] for k in PROBES} == PROBES
        names = {e["name"] for e in container["env"]}
        fields = {f.upper() for f in settings.model_fields}
        assert names <= fields, names - fields
        if overlay == "production":
            assert found[name]["spec"]["replicas"] >= 2
