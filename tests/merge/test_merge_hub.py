"""Hub ids as model paths, resolved through a local cache laid out the way huggingface_hub lays it out.

No hub is reachable from test machines, so the end-to-end tests run the CLI in a subprocess with
`HF_HUB_OFFLINE=1` and `HF_HUB_CACHE` pointing at a cache built here (blobs, snapshots of symlinks, refs/main);
the online path is checked with huggingface_hub's functions replaced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.merge.hub_cache import add_to_cache
from tests.merge.parents import PHIND_LIKE, WIZARD_LIKE

pytest.importorskip("huggingface_hub")


def run_offline(tmp_path: Path, cache: Path, model1: str, model2: str) -> subprocess.CompletedProcess[str]:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model_path1": model1,
        "model_path2": model2,
        "output_model_path": str(tmp_path / "out"),
        "operations": [{"operation": "all", "gradient_values": [0.25, 0.75]}],
    }))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home")}
    repo_root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "codebooga.server", "merge", str(recipe)],
        capture_output=True, text=True, env=env, cwd=repo_root, timeout=120,
    )


def test_hub_ids_resolve_from_the_cache_offline(model_factory, tmp_path):
    cache = tmp_path / "hub"
    add_to_cache(cache, "acme/phind-tiny", model_factory(PHIND_LIKE))
    add_to_cache(cache, "acme/wizard-tiny", model_factory(WIZARD_LIKE))
    result = run_offline(tmp_path, cache, "acme/phind-tiny", "acme/wizard-tiny")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    config = (tmp_path / "out" / "config.json")
    assert not config.is_symlink() and '"vocab_size": 320' in config.read_text()


def test_uncached_hub_id_offline_is_one_clear_line(model_factory, tmp_path):
    cache = tmp_path / "hub"
    add_to_cache(cache, "acme/phind-tiny", model_factory(PHIND_LIKE))
    result = run_offline(tmp_path, cache, "acme/phind-tiny", "acme/not-downloaded")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "acme/not-downloaded" in lines[0] and "HF_HUB_OFFLINE" in lines[0] and str(cache) in lines[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hub", "recipe.yaml"]


def test_online_download_asks_for_one_weight_format(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub import constants

    from codebooga.merge.hub import resolve_model

    requests = []
    repo_files = ["config.json", "pytorch_model-00001-of-00002.bin", "model-00001-of-00002.safetensors",
                  "model.safetensors.index.json", "tokenizer.model", "README.md"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    siblings = [SimpleNamespace(rfilename=name) for name in repo_files]
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo_id: SimpleNamespace(siblings=siblings))

    def fake_snapshot_download(repo_id, allow_patterns, local_files_only):
        requests.append((repo_id, allow_patterns, local_files_only))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert resolve_model("Phind/Phind-CodeLlama-34B-v2") == tmp_path
    (repo_id, patterns, local_only), = requests
    assert repo_id == "Phind/Phind-CodeLlama-34B-v2" and not local_only
    assert "model*.safetensors" in patterns and "config.json" in patterns and "tokenizer.model" in patterns
    assert not any(pattern.endswith(".bin") for pattern in patterns)


def test_unreachable_hub_falls_back_to_cache(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub import constants

    from codebooga.merge.hub import resolve_model

    def no_network(self, repo_id):
        raise ConnectionError("Name or service not known")

    calls = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, allow_patterns, local_files_only: calls.append(local_files_only) or str(tmp_path))
    assert resolve_model("WizardLMTeam/WizardCoder-Python-34B-V1.0") == tmp_path
    assert calls == [True]


@pytest.mark.parametrize(("spec", "expected"), [
    ("Phind/Phind-CodeLlama-34B-v2", True),
    ("WizardLMTeam/WizardCoder-Python-34B-V1.0", True),
    ("./models/phind", False),
    ("/abs/path", False),
    ("just-a-name", False),
    ("a/b/c", False),
])
def test_hub_id_shape(spec, expected):
    from codebooga.merge.hub import is_hub_id

    assert is_hub_id(spec) is expected
