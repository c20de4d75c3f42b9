"""The config.json keys exllamav2 0.3.2 reads for RoPE, lifted out of transformers 5's `rope_parameters`.

transformers 5 writes `rope_theta` (and the scaling type and factor) inside one `rope_parameters` dict; exllamav2
0.3.2, the last release, reads only the top-level `rope_theta` / `rope_scaling` and otherwise silently uses
10000, so a model saved by transformers 5 with any other base loads, quantizes and generates, wrongly. (The first
GPU run found it: greedy tokens of an 8-bit EXL2 differed from the same weights' GGUF from the first step.)
"""

from __future__ import annotations

from typing import Any


def exllamav2_rope_keys(config: dict[str, Any]) -> dict[str, Any]:
    """Top-level `rope_theta` / `rope_scaling` entries to add so exllamav2 sees the RoPE transformers wrote under
    `rope_parameters`; empty when the config already says it at the top level (or says nothing)."""
    parameters = config.get("rope_parameters")
    if not isinstance(parameters, dict):
        return {}
    keys: dict[str, Any] = {}
    if "rope_theta" not in config and "rope_theta" in parameters:
        keys["rope_theta"] = parameters["rope_theta"]
    scaling = {key: value for key, value in parameters.items() if key != "rope_theta"}
    if "rope_scaling" not in config and scaling.get("rope_type", "default") != "default":
        keys["rope_scaling"] = scaling
    return keys
