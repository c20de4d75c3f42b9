"""Human-readable text for `codebooga merge --dry-run`: every tensor with the blends it will receive."""

from __future__ import annotations

from codebooga.merge.plan import MergePlan, TensorPlan

_SHORT_DTYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}


def format_plan(plan: MergePlan, header: list[tuple[str, str]]) -> str:
    """The plan as a table, after `header` (label, value) lines describing models and output."""
    selections = ", ".join(f"{label} {count}" for label, count in plan.selections)
    header = [*header, ("selected", f"{selections} tensors")]
    width = max(len(label) for label, _ in header)
    lines = [f"{label:<{width}}  {value}" for label, value in header]
    lines.append("")
    name_width = max(len(tensor.name) for tensor in plan.tensors)
    shape_width = max(len(format_shape(tensor.shape)) for tensor in plan.tensors)
    lines.append(f"{'#':>4}  {'tensor':<{name_width}}  {'shape':<{shape_width}}  {'in':<4}  model 2's share, per operation")
    for number, tensor in enumerate(plan.tensors):
        dtype = _SHORT_DTYPES.get(tensor.source_dtype, tensor.source_dtype)
        lines.append(
            f"{number:>4}  {tensor.name:<{name_width}}  {format_shape(tensor.shape):<{shape_width}}  "
            f"{dtype:<4}  {describe_blends(tensor)}"
        )
    copied = len(plan.tensors) - plan.blended
    lines.append("")
    lines.append(f"{len(plan.tensors)} tensors: {plan.blended} blended, {copied} copied from model 1")
    return "\n".join(lines)


def describe_blends(tensor: TensorPlan) -> str:
    """E.g. `self_attn 0.7500 → layernorm 0.5000`, `copied from model 1`, plus a note on vocabulary rows."""
    if not tensor.blends:
        return "copied from model 1"
    text = " → ".join(f"{blend.operation} {blend.ratio:.4f}" for blend in tensor.blends)
    if tensor.model2_rows != tensor.rows:
        text += f"  (rows: model 1 {tensor.rows}, model 2 {tensor.model2_rows}; first {tensor.shared_rows} blended)"
    return text


def format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def format_bytes(count: int) -> str:
    """Bytes in binary units with one decimal, e.g. `62.9 GiB`."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    raise AssertionError("unreachable")
