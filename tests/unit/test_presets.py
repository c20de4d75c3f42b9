"""Preset files and precedence: client fields > request preset > server preset."""

from pathlib import Path

import pytest

from codebooga.presets import preset_folder
from codebooga.server.engine.errors import InvalidRequest
from codebooga.server.engine.presets import PresetBook, PresetError


@pytest.fixture(scope="module")
def book() -> PresetBook:
    return PresetBook.load(preset_folder())


def test_divine_intellect_holds_the_seeds_values(book: PresetBook) -> None:
    params = book.resolve("divine-intellect", None, {})
    assert (params.temperature, params.top_p, params.repetition_penalty, params.top_k) == (1.31, 0.14, 1.17, 49)


def test_request_preset_overrides_server_preset(book: PresetBook) -> None:
    params = book.resolve("divine-intellect", "greedy", {})
    assert params.temperature == 0.0 and params.greedy and params.repetition_penalty == 1.0


def test_client_fields_override_every_preset(book: PresetBook) -> None:
    params = book.resolve("divine-intellect", "greedy", {"temperature": 0.7, "top_p": None})
    assert params.temperature == 0.7 and params.top_p == 1.0


def test_unknown_preset_names_the_available_ones(book: PresetBook) -> None:
    with pytest.raises(InvalidRequest, match="divine-intellect, greedy, openai"):
        book.resolve("divine-intellect", "wild", {})


def test_preset_with_unknown_field_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("temperature: 1\nwarmth: 3\n")
    with pytest.raises(PresetError, match="warmth"):
        PresetBook.load(tmp_path)
