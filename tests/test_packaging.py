"""`pip install .` (not editable) gives a working `codebooga` from any directory, under one import name.

The wheel is built from a copy of the sources and installed with `--no-deps` into a fresh venv. Its third-party
dependencies (llama-cpp-python as `make` built it, fastapi, numpy, ...) come from this test's own venv through a
`.pth` line: a plain path entry, so that venv's editable-install hook never runs and codebooga itself can only come
from the wheel. Everything then runs from an empty temporary folder: serve the embedded model and chat with the
official openai client; merge the shipped recipe by name (its hub ids answered from a local hub cache) and by path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import openai
import pytest

from server_process import REPO_ROOT, running_server
from tests.merge.hub_cache import add_to_cache
from tests.merge.parents import PHIND_LIKE, WIZARD_LIKE, write_model

pytestmark = pytest.mark.slow

SOURCES = {"server": "codebooga/server", "merge": "codebooga/merge", "prompts": "codebooga/prompts",
           "presets": "codebooga/presets"}  # fmt: skip
DATA_SUFFIXES = (".py", ".jinja", ".yaml", ".gz", ".html", ".js", ".css", ".png", ".txt", "")  # "": LICENSE, NOTICE
RECIPE = "codebooga-34b-v0.1"
PARENTS = {"Phind/Phind-CodeLlama-34B-v2": PHIND_LIKE, "WizardLMTeam/WizardCoder-Python-34B-V1.0": WIZARD_LIKE}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a clean copy of the sources (no stale build/ folder can leak into it)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for folder in SOURCES:
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, source],
        check=True, timeout=300,
    )  # fmt: skip
    (built,) = dist.glob("codebooga-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel, with this venv's third-party packages reachable."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True, timeout=120)
    python = root / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
        check=True, timeout=300,
    )  # fmt: skip
    site_packages = Path(run(root, "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_packages / "codebooga-test-dependencies.pth").write_text("\n".join(ours) + "\n")
    return root


@pytest.fixture()
def elsewhere(tmp_path: Path) -> Path:
    """An empty folder to run from: no checkout, no prompts/, presets/ or recipes next to it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def run(venv: Path, program: str, *args: object, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [venv / "bin" / program, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_wheel_holds_every_source_and_data_file_under_codebooga_only(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names} == {"codebooga", f"{wheel.name.split('-py3')[0]}.dist-info"}
    expected = {
        f"{target}/{path.relative_to(REPO_ROOT / folder).as_posix()}"
        for folder, target in SOURCES.items()
        for path in (REPO_ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in DATA_SUFFIXES and "__pycache__" not in path.parts
    }
    assert expected - names == set(), "pyproject.toml's packages or package-data miss these files"


def test_only_codebooga_is_importable(venv: Path, elsewhere: Path) -> None:
    where = run(venv, "python", "-c", "import codebooga.server, codebooga.merge; print(codebooga.server.__file__)",
                cwd=elsewhere)  # fmt: skip
    assert Path(where).is_relative_to(venv), where
    for name in ("server", "merge"):
        result = subprocess.run([venv / "bin" / "python", "-c", f"import {name}"], cwd=elsewhere,
                                capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 1 and "ModuleNotFoundError" in result.stderr, result.stderr


def test_serve_from_any_folder_answers_the_openai_client(venv: Path, elsewhere: Path) -> None:
    with running_server("--ctx-size", "1024", "--parallel", "1", codebooga=[str(venv / "bin" / "codebooga")],
                        cwd=elsewhere) as server:  # fmt: skip
        client = openai.OpenAI(base_url=server.api_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="codebooga", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8,
            extra_body={"preset": "greedy"},
        )  # fmt: skip
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
        assert "divine-intellect" in server.log()  # the default preset, read from the installed package data
        for page in ("/ui", "/docs", "/ui/static/app.js", "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js"):
            assert httpx.get(f"{server.base_url}{page}").status_code == 200, page  # the playground's files too


def test_merge_a_shipped_recipe_by_name_and_by_path(venv: Path, elsewhere: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    for repo_id, spec in PARENTS.items():
        add_to_cache(cache, repo_id, write_model(tmp_path / repo_id.replace("/", "--"), spec))
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home")}

    run(venv, "codebooga", "merge", RECIPE, cwd=elsewhere, env=offline)
    assert (elsewhere / "CodeBooga-34B-v0.1" / "model.safetensors.index.json").is_file()

    shipped = REPO_ROOT / "merge" / "recipes" / f"{RECIPE}.yaml"
    plan = run(venv, "codebooga", "merge", shipped, "--dry-run", "--output", tmp_path / "by-path", cwd=elsewhere,
               env=offline)  # fmt: skip
    assert "lm_head.weight" in plan

    result = subprocess.run([venv / "bin" / "codebooga", "merge", "no-such-recipe"], cwd=elsewhere,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "codebooga: error: recipe not found: no-such-recipe "
        "(neither a file nor a shipped recipe: codebooga-34b-v0.1, codebooga-34b-v0.1-reversed)"
    )
