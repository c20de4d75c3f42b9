"""Generate HumanEval-JS from HumanEval: the Python problems whose tests are literal-only, translated mechanically.

Run `python -m codebooga.server.eval.js_translate` to rewrite `data/humaneval-js.jsonl.gz` (the package ships its
output; docs/eval.md explains the suite). A problem is translated only when everything about it is mechanical:

- the prompt holds one function (no helpers to translate) with a docstring; the JavaScript prompt is that
  docstring as a comment, its `>>>` examples rewritten in JavaScript where they are literal calls, and the opening
  line `function name(params) {`;
- every statement of `check()` is `assert candidate(<literals>) == <literal>` (or `assert True`, which is
  dropped); the test becomes `assert.deepStrictEqual(candidate(...), ...)` with node's `assert` module;
- every literal has an exact JavaScript twin: no floats that are not finite, no integers beyond 2**53, no sets.

JavaScript has no canonical solutions to translate, so each problem's `canonical_solution` is an answer table:
the expected value for each tested argument list. It proves that prompt, completion and test assemble into a
program that node runs and that the harness scores correctly, which is what the canonical check is for; the
expected values themselves are HumanEval's, which the Python canonical solutions pass.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from codebooga.server.eval.suites import Problem, humaneval_problems

OUTPUT = Path(__file__).with_name("data") / "humaneval-js.jsonl.gz"
SAFE_INTEGER = 2**53 - 1
STOP = ("\nfunction ", "\n/*", "\n//", "\nconsole.log")


class Untranslatable(Exception):
    """This problem is not literal-only; it is left out of the JavaScript suite."""


def js_literal(node: ast.expr) -> str:
    """The JavaScript spelling of a Python literal expression."""
    return _js_value(_constant_value(node))


CONSTANT_NODES = (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.BinOp, ast.UnaryOp, ast.Load,
                  ast.operator, ast.unaryop)  # fmt: skip


def _constant_value(node: ast.expr) -> Any:
    """The value of a literal, or of arithmetic on literals (`3 * 19`, `'ab' + 'c'`), which tests spell often."""
    if not all(isinstance(part, CONSTANT_NODES) for part in ast.walk(node)):
        raise Untranslatable(f"not a literal: {ast.unparse(node)}")
    try:
        return eval(compile(ast.Expression(node), "<literal>", "eval"), {"__builtins__": {}})  # noqa: S307
    except Exception:
        raise Untranslatable(f"not a literal: {ast.unparse(node)}") from None


def _js_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if abs(value) > SAFE_INTEGER:
            raise Untranslatable(f"integer beyond 2**53: {value}")
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Untranslatable(f"non-finite float: {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_js_value(item) for item in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise Untranslatable("dict with non-string keys")
        return "{" + ", ".join(f"{json.dumps(key)}: {_js_value(item)}" for key, item in value.items()) + "}"
    raise Untranslatable(f"no JavaScript twin for {type(value).__name__}")


def _test_cases(test: str) -> list[tuple[list[str], str]]:
    """(JS argument literals, JS expected literal) for each assert of `check`."""
    module = ast.parse(test)
    checks = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"]
    if len(checks) != 1:
        raise Untranslatable("no single check()")
    cases = []
    for statement in checks[0].body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring or a bare string
        if not isinstance(statement, ast.Assert):
            raise Untranslatable(f"statement in check(): {ast.unparse(statement)[:60]}")
        condition = statement.test
        if isinstance(condition, ast.Constant) and condition.value is True:
            continue
        if not (isinstance(condition, ast.Compare) and len(condition.ops) == 1 and isinstance(condition.ops[0], ast.Eq)):
            raise Untranslatable(f"assert that is not `==`: {ast.unparse(condition)[:60]}")
        call = condition.left
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "candidate"):
            raise Untranslatable("left side is not candidate(...)")
        if call.keywords:
            raise Untranslatable("keyword arguments")
        cases.append(([js_literal(argument) for argument in call.args], js_literal(condition.comparators[0])))
    if not cases:
        raise Untranslatable("no asserts")
    _check_consistent(cases)
    return cases


def _check_consistent(cases: list[tuple[list[str], str]]) -> None:
    """JavaScript has one number type: a test that tells `3.0` from `3` cannot be translated."""
    expected_by_args: dict[str, str] = {}
    for args, expected in cases:
        key = json.dumps(json.loads("[" + ",".join(args) + "]", parse_float=_js_number))
        if expected_by_args.setdefault(key, expected) != expected:
            raise Untranslatable(f"tests tell floats from integers: {key}")


def _js_number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def _function(problem: Problem) -> ast.FunctionDef:
    module = ast.parse(problem.prompt)
    functions = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    if len(functions) != 1 or functions[0].name != problem.entry_point:
        raise Untranslatable("prompt holds helpers besides the entry point")
    return functions[0]


def _doc_comment(docstring: str) -> str:
    lines = []
    after_example = False
    for line in docstring.splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            line = line.replace(stripped, "> " + _js_example(stripped[3:].strip()))
            after_example = True
        elif after_example and stripped:
            line = line.replace(stripped, _js_result(stripped))
            after_example = False
        lines.append(("// " + line).rstrip())
    return "\n".join(lines)


def _js_result(text: str) -> str:
    """A doctest's printed result in JavaScript when it is a literal (`True` → `true`)."""
    try:
        return _js_value(ast.literal_eval(text))
    except (ValueError, SyntaxError, Untranslatable):
        return text


def _js_example(expression: str) -> str:
    """A doctest call `f(1, [2])` in JavaScript when it is a literal call; otherwise the Python text as is."""
    try:
        node = ast.parse(expression, mode="eval").body
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            return f"{node.func.id}({', '.join(js_literal(argument) for argument in node.args)})"
    except (SyntaxError, Untranslatable):
        pass
    return expression


def translate(problem: Problem) -> dict[str, Any]:
    """The HumanEval-JS record for one HumanEval problem, or `Untranslatable`."""
    function = _function(problem)
    docstring = ast.get_docstring(function)
    if not docstring:
        raise Untranslatable("no docstring")
    if function.args.vararg or function.args.kwarg or function.args.kwonlyargs:
        raise Untranslatable("variadic signature")
    params = ", ".join(argument.arg for argument in function.args.args)
    cases = _test_cases(problem.test)
    prompt = f"{_doc_comment(docstring)}\nfunction {problem.entry_point}({params}) {{\n"
    asserts = "\n".join(f"  assert.deepStrictEqual(candidate({', '.join(args)}), {expected});" for args, expected in cases)
    test = f'const assert = require("node:assert");\n\nfunction check(candidate) {{\n{asserts}\n}}\n'
    table = ",\n".join(f"    [{json.dumps('[' + ','.join(args) + ']')}, {expected}]" for args, expected in cases)
    canonical = (
        f"  const answers = new Map([\n{table}\n  ].map(([key, value]) => [JSON.stringify(JSON.parse(key)), value]));\n"
        "  return answers.get(JSON.stringify(Array.from(arguments)));\n}\n"
    )
    return {
        "task_id": problem.task_id.replace("HumanEval/", "HumanEval-JS/"),
        "prompt": prompt,
        "canonical_solution": canonical,
        "test": test,
        "entry_point": problem.entry_point,
        "language": "javascript",
        "stop": list(STOP),
    }


def translate_all(problems: Iterable[Problem]) -> Iterator[dict[str, Any]]:
    for problem in problems:
        try:
            yield translate(problem)
        except Untranslatable:
            continue


def main() -> None:
    records = list(translate_all(humaneval_problems()))
    OUTPUT.parent.mkdir(exist_ok=True)
    with open(OUTPUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as file:
        for record in records:
            file.write((json.dumps(record) + "\n").encode())
    print(f"{len(records)} problems written to {OUTPUT}")


if __name__ == "__main__":
    main()
