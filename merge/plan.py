"""Turn a recipe and two opened checkpoints into a merge plan: which tensor gets which blends, in which order.

Planning is separate from execution so that every check (filters, gradients, missing tensors, shapes,
architectures) runs before any heavy work, `--dry-run` can print exactly what the real run will do, and the
output's safetensors headers can be written up front.

The rules reproduce the original BlockMerge Gradient script (see docs/merge.md):
keys are model 1's tensor names in module order; each operation spreads `numpy.linspace` ratios over its keys
section by section, padded with the last gradient value; a ratio is model 2's share; a tensor selected by
several operations is blended once per operation, cumulatively, in recipe order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from codebooga.merge.checkpoint import Checkpoint, TensorInfo
from codebooga.merge.dtypes import FLOAT_DTYPES
from codebooga.merge.errors import MergeError
from codebooga.merge.recipe import Operation, Recipe

# Rank of each known module/parameter name among its siblings, as HF LLaMA modules register them; this is
# the order `model.state_dict()` yields, which the original script iterated over.
_MODULE_RANK: dict[str, int] = {
    "model": 0,
    "lm_head": 1,
    "embed_tokens": 0,
    "layers": 1,
    "norm": 2,
    "self_attn": 0,
    "mlp": 1,
    "input_layernorm": 2,
    "post_attention_layernorm": 3,
    "q_proj": 0,
    "k_proj": 1,
    "v_proj": 2,
    "o_proj": 3,
    "gate_proj": 0,
    "up_proj": 1,
    "down_proj": 2,
    "weight": 0,
    "bias": 1,
}
# Non-persistent buffers that old checkpoints saved but that are not part of the model's state dict.
_NOT_IN_STATE_DICT = (".rotary_emb.inv_freq",)
# Tensors whose first dimension is the vocabulary and may differ between the parents.
_VOCAB_TENSORS = ("embed_tokens.weight", "lm_head.weight")
# Config keys that must agree for the parents to be blendable.
_ARCHITECTURE_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
)


class PlanError(MergeError):
    """The recipe cannot be applied to these two models."""


@dataclass(frozen=True)
class Blend:
    """One application of `new = (1 - ratio) * current + ratio * model2`, in float32."""

    operation: str
    ratio: float

    @property
    def model1_weight(self) -> np.float32:
        """`1 - ratio` computed in float64 then rounded to float32, as torch does with a Python scalar."""
        return np.float32(1.0 - self.ratio)

    @property
    def model2_weight(self) -> np.float32:
        return np.float32(self.ratio)


@dataclass(frozen=True)
class TensorPlan:
    """What to do with one output tensor. `shared_rows` rows are blended; rows past it stay model 1's."""

    name: str
    shape: tuple[int, ...]
    source_dtype: str
    blends: tuple[Blend, ...]
    shared_rows: int
    model2_rows: int

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1


@dataclass(frozen=True)
class MergePlan:
    """Every output tensor in module order, each with its blends in recipe order.

    `selections` pairs each operation's label with how many tensors it selected, in recipe order.
    """

    tensors: tuple[TensorPlan, ...]
    selections: tuple[tuple[str, int], ...]

    @property
    def blended(self) -> int:
        return sum(1 for tensor in self.tensors if tensor.blends)


def module_order_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key placing tensor names in HF LLaMA module order (numbers numerically, known names by rank).

    Names this table does not know sort after known siblings, alphabetically, so the order stays total.
    """
    key = []
    for part in name.split("."):
        if part.isdigit():
            key.append((0, int(part), ""))
        elif part in _MODULE_RANK:
            key.append((1, _MODULE_RANK[part], ""))
        else:
            key.append((2, 0, part))
    return tuple(key)


def state_dict_names(checkpoint: Checkpoint) -> list[str]:
    """The tensor names a loaded HF model's `state_dict()` would hold, in module order."""
    names = [name for name in checkpoint.names if not name.endswith(_NOT_IN_STATE_DICT)]
    return sorted(names, key=module_order_key)


def gradient_ratios(values: tuple[float, ...], count: int) -> list[float]:
    """Model 2's share for each of `count` keys, exactly as the original script computed it."""
    gradient = list(values) if len(values) > 1 else [values[0], values[0]]
    sections = len(gradient) - 1
    per_section = count // sections
    ratios: list[float] = []
    for index in range(sections):
        ratios.extend(float(ratio) for ratio in np.linspace(gradient[index], gradient[index + 1], per_section))
    ratios.extend([float(gradient[-1])] * (count - len(ratios)))
    return ratios


def build_plan(recipe: Recipe, model1: Checkpoint, model2: Checkpoint) -> MergePlan:
    """Validate the recipe against both models and compute every tensor's blends; raises `PlanError`."""
    check_architectures(model1.config, model2.config)
    names = state_dict_names(model1)
    blends: dict[str, list[Blend]] = {name: [] for name in names}
    selections: list[tuple[str, int]] = []
    for operation in recipe.operations:
        keys = [name for name in names if operation.selects(name)]
        if not keys:
            raise PlanError(f"operation '{operation.label}': {_describe_selection(operation)} matches no tensor of model 1")
        selections.append((operation.label, len(keys)))
        for key, ratio in zip(keys, gradient_ratios(operation.gradient_values, len(keys)), strict=True):
            blends[key].append(Blend(operation.label, ratio))
    tensors = []
    for name in names:
        info = model1.info(name)
        _require_float(info, "model 1")
        shared_rows = info.rows
        model2_rows = 0
        if blends[name]:
            other = _model2_tensor(model2, name, blends[name][0].operation)
            _require_float(other, "model 2")
            shared_rows = _shared_rows(info, other)
            model2_rows = other.rows
        tensors.append(
            TensorPlan(
                name=name,
                shape=info.shape,
                source_dtype=info.dtype,
                blends=tuple(blends[name]),
                shared_rows=shared_rows,
                model2_rows=model2_rows,
            )
        )
    return MergePlan(tensors=tuple(tensors), selections=tuple(selections))


def check_architectures(config1: dict[str, Any], config2: dict[str, Any]) -> None:
    """Refuse parents whose configs disagree on a structural hyperparameter (naming the first one)."""
    for key in _ARCHITECTURE_KEYS:
        value1, value2 = config1.get(key), config2.get(key)
        if key == "num_key_value_heads":
            value1 = config1.get(key, config1.get("num_attention_heads"))
            value2 = config2.get(key, config2.get("num_attention_heads"))
        if value1 is not None and value2 is not None and value1 != value2:
            raise PlanError(f"architectures differ: {key} is {value1} in model 1 but {value2} in model 2")


def _describe_selection(operation: Operation) -> str:
    parts = [f"filter '{operation.filter}'" if operation.filter is not None else "no filter"]
    if operation.layer_only:
        parts.append("with layer_only")
    if operation.no_layers:
        parts.append("with no_layers")
    return " ".join(parts)


def _model2_tensor(model2: Checkpoint, name: str, operation: str) -> TensorInfo:
    if name not in model2:
        raise PlanError(f"model 2 ({model2.folder}) lacks tensor {name}, which operation '{operation}' blends")
    return model2.info(name)


def _shared_rows(info1: TensorInfo, info2: TensorInfo) -> int:
    if info1.shape == info2.shape:
        return info1.rows
    vocab_rows_differ = info1.name.endswith(_VOCAB_TENSORS) and len(info1.shape) == len(info2.shape) >= 1
    if vocab_rows_differ and info1.shape[1:] == info2.shape[1:]:
        return min(info1.rows, info2.rows)
    raise PlanError(
        f"tensor {info1.name} has shape {_format_shape(info1.shape)} in model 1 "
        f"but {_format_shape(info2.shape)} in model 2"
    )


def _require_float(info: TensorInfo, which: str) -> None:
    if info.dtype not in FLOAT_DTYPES:
        raise PlanError(f"tensor {info.name} of {which} has dtype {info.dtype}; only float16/bfloat16/float32 merge")


def _format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"
