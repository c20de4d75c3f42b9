"""`codebooga serve --model OWNER/REPO:QUANT` through the real huggingface_hub, against a local hub (`HF_ENDPOINT`).

The fake repo holds the embedded SmolLM2 GGUF under a quant-tagged name; its first download is cut halfway, so
the serve that answers a chat has also resumed a download. The cache then serves `HF_HUB_OFFLINE=1`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from codebooga.server.embedded_model import embedded_model_path
from tests.hub_server import FakeHub, fake_hub
from tests.server_process import REPO_ROOT, running_server

GGUF = embedded_model_path()
pytestmark = pytest.mark.skipif(GGUF is None, reason="needs the embedded model")


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    assert GGUF is not None
    with fake_hub() as hub:
        hub.add("test/tiny-GGUF", {
            "README.md": b"# tiny",
            "tiny.Q4_1.gguf": GGUF.read_bytes(),
            "tiny.Q5_K_M.gguf": b"never fetched",
        })  # fmt: skip
        yield hub


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf-home")


def hub_env(hub: FakeHub, hf_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a codebooga pointed at the local hub and cache, online unless `extra` says otherwise."""
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "", **extra}  # fmt: skip


def serve_fails(env: dict[str, str], model: str) -> list[str]:
    """Run `codebooga serve --model MODEL`, which must fail before serving; its stderr lines."""
    result = subprocess.run(
        [sys.executable, "-m", "codebooga.server", "serve", "--model", model],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=REPO_ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    return result.stderr.strip().splitlines()


def test_offline_before_any_download_is_one_line(hub, hf_home):
    lines = serve_fails(hub_env(hub, hf_home, HF_HUB_OFFLINE="1"), "test/tiny-GGUF:Q4_1")
    assert len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0] and str(hf_home) in lines[0], lines
    assert not any(request.startswith("GET") for request in hub.requests)


def test_quant_download_resumes_and_serves_a_chat(hub, hf_home):
    hub.drop_once.add("tiny.Q4_1.gguf")
    env = hub_env(hub, hf_home, HF_TOKEN="hf_test_token")
    with running_server("--model", "test/tiny-GGUF:q4_1", env=env) as server:
        reply = OpenAI(base_url=server.api_url, api_key="unused").chat.completions.create(
            model="tiny.Q4_1", messages=[{"role": "user", "content": "Say hi"}], max_tokens=8, temperature=0
        )
        models = httpx.get(f"{server.api_url}/models").json()["data"]
        log = server.log()
    assert reply.choices[0].message.content
    assert [model["id"] for model in models] == ["tiny.Q4_1"]
    gets = [request for request in hub.requests if "resolve" in request and request.startswith("GET")]
    assert len(gets) == 2 and " bytes=" in gets[1], gets  # resumed from the partial file, not restarted
    assert 0 < int(gets[1].split("bytes=")[1].rstrip("-")) <= GGUF.stat().st_size // 2
    assert not any("Q5_K_M" in request for request in hub.requests)
    assert hub.authorizations == {"Bearer hf_test_token"}
    assert "fetching test/tiny-GGUF:q4_1" in log
    cached = list((hf_home / "hub").glob("models--test--tiny-GGUF/snapshots/*/tiny.Q4_1.gguf"))
    assert len(cached) == 1 and cached[0].stat().st_size == GGUF.stat().st_size


def test_offline_after_download_serves_from_the_cache(hub, hf_home):
    before = len(hub.requests)
    env = hub_env(hub, hf_home, HF_HUB_OFFLINE="1")
    with running_server("--model", "test/tiny-GGUF/tiny.Q4_1.gguf", env=env) as server:
        assert httpx.get(f"{server.api_url}/models").json()["data"][0]["id"] == "tiny.Q4_1"
    assert len(hub.requests) == before


def test_missing_quant_lists_the_quants_there(hub, hf_home):
    lines = serve_fails(hub_env(hub, hf_home), "test/tiny-GGUF:Q8_0")
    assert len(lines) == 1 and "Q8_0" in lines[0] and "Q4_1, Q5_K_M" in lines[0], lines


def test_missing_repo_and_file_are_one_line(hub, hf_home):
    lines = serve_fails(hub_env(hub, hf_home), "test/no-such-repo:Q4_1")
    assert len(lines) == 1 and "no repo test/no-such-repo" in lines[0], lines
    lines = serve_fails(hub_env(hub, hf_home), "test/tiny-GGUF/other.gguf")
    assert len(lines) == 1 and "no file other.gguf" in lines[0] and "tiny.Q4_1.gguf" in lines[0], lines


def fetched(env: dict[str, str], model: str) -> Path:
    """The path `codebooga serve --model MODEL` would load, after its download (in a fresh interpreter, since
    huggingface_hub reads HF_ENDPOINT when imported)."""
    code = ("import sys; from codebooga.server.engine.model_source import fetch, parse_reference, plan_download; "
            "print(fetch(plan_download(parse_reference(sys.argv[1]))))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True,
                            env={**os.environ, **env}, cwd=REPO_ROOT, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_exl2_revision_and_split_gguf_downloads(hub, hf_home):
    hub.add("acme/tiny-exl2", {"config.json": b"{}", "output.safetensors": b"w" * 64,
                               "tokenizer.model": b"t", "README.md": b"#"}, revision="4.0bpw")  # fmt: skip
    hub.add("acme/tiny-GGUF", {"t.Q8_0-00001-of-00002.gguf": b"GGUF1", "t.Q8_0-00002-of-00002.gguf": b"2",
                               "t.Q2_K.gguf": b"GGUF"})  # fmt: skip
    folder = fetched(hub_env(hub, hf_home), "acme/tiny-exl2@4.0bpw")
    assert folder.name == hub.commit("acme/tiny-exl2", "4.0bpw")
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "output.safetensors", "tokenizer.model"]
    first = fetched(hub_env(hub, hf_home), "acme/tiny-GGUF:Q8_0")
    assert first.name == "t.Q8_0-00001-of-00002.gguf" and first.with_name("t.Q8_0-00002-of-00002.gguf").is_file()
    assert not first.with_name("t.Q2_K.gguf").exists()
