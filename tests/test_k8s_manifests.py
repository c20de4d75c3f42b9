"""deploy/k8s/ against the Kubernetes schemas (kubernetes-validate's bundled OpenAPI schemas, strict: unknown
fields fail) and against codebooga itself: the probes, the metric the HPA scales on, the options it sets.

No cluster runs here, so whether the pods schedule, pull the image and scale is not tested (docs/deploy.md).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from codebooga.server.api.prometheus import render
from codebooga.server.engine.metrics import EngineMetrics
from codebooga.server.engine.model_source import parse_reference
from codebooga.server.engine.types import BackendStats
from codebooga.server.settings import ServeSettings
from tests.server_process import REPO_ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFESTS = sorted((REPO_ROOT / "deploy" / "k8s").glob("*.yaml"))
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")  # a long-supported release and a recent one


def resources() -> dict[str, dict]:
    found = {}
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_manifests_fit_together_and_fit_codebooga():
    found = resources()
    deployment, service, hpa, claim = (found[kind] for kind in (
        "Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim"))  # fmt: skip
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"

    env = {item["name"]: item.get("value") for item in container["env"]}
    options = {f"CODEBOOGA_{name.upper()}" for name in ServeSettings.__dataclass_fields__}
    assert {name for name in env if name.startswith("CODEBOOGA_")} <= options
    assert parse_reference(env["CODEBOOGA_MODEL"]) is not None
    assert pod["spec"]["terminationGracePeriodSeconds"] > float(env["CODEBOOGA_SHUTDOWN_GRACE"])

    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    exported = render(EngineMetrics(), BackendStats(slots_total=1, slots_busy=0, queue_depth=0), Counter())
    assert f"\n{metric} 0\n" in exported
