"""Sampling presets (`presets/*.yaml`) and how they combine with a request's own fields.

Precedence, highest first: fields the client sent > the preset the request names > the server's preset >
neutral defaults. Presets only hold sampling fields, so a preset can never change what the client asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib.resources.abc import Traversable

import yaml

from codebooga.server.engine.errors import InvalidRequest
from codebooga.server.engine.types import SamplingParams

PRESET_FIELDS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "typical_p",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
)


class PresetError(Exception):
    """A preset file is unreadable or holds something other than known sampling fields."""


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    values: Mapping[str, float]


class PresetBook:
    def __init__(self, presets: Mapping[str, Preset]) -> None:
        self._presets = dict(sorted(presets.items()))

    @classmethod
    def load(cls, directory: Traversable) -> PresetBook:
        """Every `*.yaml` preset in `directory` (a folder on disk, or package data such as `preset_folder()`)."""
        presets = {}
        for entry in sorted(directory.iterdir(), key=lambda entry: entry.name):
            if entry.name.endswith(".yaml"):
                preset = _read_preset(entry)
                presets[preset.name] = preset
        if not presets:
            raise PresetError(f"no presets (*.yaml) found in {directory}")
        return cls(presets)

    @property
    def names(self) -> list[str]:
        return list(self._presets)

    def get(self, name: str) -> Preset:
        preset = self._presets.get(name)
        if preset is None:
            raise InvalidRequest(
                f"unknown preset '{name}'; available presets: {', '.join(self.names)}", param="preset"
            )
        return preset

    def resolve(
        self,
        server_preset: str,
        request_preset: str | None,
        sent: Mapping[str, float | int | None],
        *,
        seed: int | None = None,
        logit_bias: tuple[tuple[int, float], ...] = (),
    ) -> SamplingParams:
        values: dict[str, float] = {}
        values.update(self.get(server_preset).values)
        if request_preset is not None:
            values.update(self.get(request_preset).values)
        values.update({key: value for key, value in sent.items() if value is not None})
        known = {field.name for field in fields(SamplingParams)}
        params = replace(SamplingParams(), **{key: value for key, value in values.items() if key in known})
        return replace(params, top_k=int(params.top_k), seed=seed, logit_bias=logit_bias)


def _read_preset(path: Traversable) -> Preset:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise PresetError(f"cannot read preset {path}: {error}") from error
    if not isinstance(data, dict):
        raise PresetError(f"preset {path} must be a mapping of sampling fields")
    description = str(data.pop("description", ""))
    unknown = sorted(set(data) - set(PRESET_FIELDS))
    if unknown:
        raise PresetError(
            f"preset {path} has unknown fields {', '.join(unknown)}; allowed: {', '.join(PRESET_FIELDS)}"
        )
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PresetError(f"preset {path}: {key} must be a number, got {value!r}")
    return Preset(name=path.name.removesuffix(".yaml"), description=description, values=data)
