"""Which hub files a `--model` reference fetches, and which path is passed on to the backend."""

from __future__ import annotations

import pytest

from codebooga.merge.shared.hub import HubError
from codebooga.server.engine.model_source import HubReference, choose_files, parse_reference, quant_of

SPLIT_REPO = [
    ".gitattributes", "README.md",
    "codebooga-34b.Q2_K.gguf",
    "codebooga-34b.Q8_0-00002-of-00002.gguf", "codebooga-34b.Q8_0-00001-of-00002.gguf",
]  # fmt: skip


@pytest.mark.parametrize(("spec", "expected"), [
    ("TheBloke/CodeBooga-34B-v0.1-GGUF:Q4_K_M", HubReference("TheBloke/CodeBooga-34B-v0.1-GGUF", quant="Q4_K_M")),
    ("acme/repo/sub/model.Q4_0.gguf", HubReference("acme/repo", file="sub/model.Q4_0.gguf")),
    ("LoneStriker/CodeBooga-34B-v0.1-4.25bpw-h6-exl2", HubReference("LoneStriker/CodeBooga-34B-v0.1-4.25bpw-h6-exl2")),
    ("LoneStriker/CodeBooga-exl2@4.0bpw", HubReference("LoneStriker/CodeBooga-exl2", revision="4.0bpw")),
    ("acme/repo@v1:q5_k_s", HubReference("acme/repo", revision="v1", quant="q5_k_s")),
    ("/models/codebooga.gguf", None),
    ("model.gguf", None),
])  # fmt: skip
def test_references_parse(spec, expected):
    assert parse_reference(spec) == expected


@pytest.mark.parametrize(("name", "quant"), [
    ("codebooga-34b-v0.1.Q4_K_M.gguf", "Q4_K_M"),
    ("sub/Model-IQ2_XXS.gguf", "IQ2_XXS"),
    ("model.q8_0-00001-of-00003.gguf", "Q8_0"),
    ("model-f16.gguf", "F16"),
    ("model.gguf", None),
])  # fmt: skip
def test_quant_tags_come_from_file_names(name, quant):
    assert quant_of(name) == quant


def test_split_gguf_fetches_every_part_and_loads_the_first():
    plan = choose_files(HubReference("acme/codebooga-GGUF", quant="q8_0"), SPLIT_REPO)
    assert plan.files == ("codebooga-34b.Q8_0-00001-of-00002.gguf", "codebooga-34b.Q8_0-00002-of-00002.gguf")
    assert plan.entry == "codebooga-34b.Q8_0-00001-of-00002.gguf" and not plan.whole_repo
    assert plan.model_id == "codebooga-34b.Q8_0"


def test_split_gguf_with_a_part_missing_is_refused():
    with pytest.raises(HubError, match="lacks codebooga-34b.Q8_0-00002-of-00002.gguf"):
        choose_files(HubReference("acme/codebooga-GGUF", quant="Q8_0"), SPLIT_REPO[:-2] + SPLIT_REPO[-1:])


def test_several_ggufs_without_a_quant_list_the_quants():
    with pytest.raises(HubError, match="quants there: Q2_K, Q8_0$"):
        choose_files(HubReference("acme/codebooga-GGUF"), SPLIT_REPO)


def test_exl2_repo_fetches_the_folder_at_its_revision():
    files = ["config.json", "output.safetensors", "tokenizer.model", "tokenizer_config.json", "README.md"]
    reference = HubReference("LoneStriker/CodeBooga-34B-v0.1-exl2", revision="4.0bpw")
    plan = choose_files(reference, files)
    assert plan.whole_repo and plan.entry == "" and plan.model_id == "CodeBooga-34B-v0.1-exl2"
    assert "*.safetensors" in plan.files and "*.json" in plan.files


def test_download_progress_is_logged_for_logs_without_a_terminal(monkeypatch, tmp_path, caplog):
    import time

    from codebooga.merge.shared import hub

    monkeypatch.setattr(hub, "cache_folder", lambda: tmp_path)
    blobs = tmp_path / "models--acme--repo-GGUF" / "blobs"
    blobs.mkdir(parents=True)
    caplog.set_level("INFO", logger="codebooga.hub")
    with hub.logged_progress("acme/repo-GGUF", "model.Q4_0.gguf", every=0.02):
        (blobs / "0123abcd.incomplete").write_bytes(b"x" * 3 * 2**20)
        time.sleep(0.2)
    assert "downloading acme/repo-GGUF/model.Q4_0.gguf: 3.0 MiB so far" in caplog.text

