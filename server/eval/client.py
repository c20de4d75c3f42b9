"""Ask an OpenAI-compatible endpoint for one answer to one problem, in either of HumanEval's two styles.

- completion: the raw prompt to `/v1/completions`, cut at HumanEval's stop sequences; the model continues the
  function body, which is what base and code models are trained for.
- chat: an instruction through `/v1/chat/completions` (the server applies the model's chat template, e.g. the
  Alpaca one CodeBooga expects); the answer's code block is taken as the completion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from codebooga.merge.shared.cli_error import CliError
from codebooga.server.eval.suites import Problem

Mode = Literal["completion", "chat"]
LANGUAGE_NAMES = {"python": "Python", "javascript": "JavaScript"}
FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|$)", re.DOTALL)


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible server and the model to ask there; `label` names it in reports."""

    base_url: str
    model: str
    label: str
    api_key: str | None = None


@dataclass(frozen=True)
class Sampling:
    mode: Mode
    temperature: float
    max_tokens: int
    preset: str | None


class EndpointClient:
    """A thread-safe HTTP client for one endpoint."""

    def __init__(self, endpoint: Endpoint, timeout: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self.endpoint = endpoint
        self._http = httpx.Client(base_url=endpoint.base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def answer(self, problem: Problem, sampling: Sampling, seed: int) -> str:
        """The completion to append to the problem's prompt (chat answers are turned into one)."""
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
        }
        if sampling.preset is not None:
            body["preset"] = sampling.preset
        if sampling.mode == "completion":
            body |= {"prompt": problem.prompt, "stop": list(problem.stop)[:4]}
            text = self._post("/completions", body)["choices"][0]["text"]
            return _cut_at_stop(text, problem.stop)
        body["messages"] = [{"role": "user", "content": instruction(problem)}]
        return completion_from_chat(problem, self._post("/chat/completions", body)["choices"][0]["message"]["content"] or "")

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as error:
            raise CliError(f"{self.endpoint.label}: {path} failed: {error}") from None
        if response.status_code != 200:
            raise CliError(f"{self.endpoint.label}: {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """OpenAI's `stop` takes four sequences; HumanEval has five, so the rest are applied here."""
    cut = min((index for index in (text.find(sequence) for sequence in stop) if index >= 0), default=len(text))
    return text[:cut]


def instruction(problem: Problem) -> str:
    language = LANGUAGE_NAMES[problem.language]
    fence = problem.language
    return (
        f"Complete the following {language} function. Answer with the whole function, including its signature, "
        f"in one ```{fence} code block.\n\n```{fence}\n{problem.prompt.rstrip()}\n```"
    )


def completion_from_chat(problem: Problem, answer: str) -> str:
    """The text to append to the prompt so that the program holds the answer's function.

    A whole function in the answer redefines the prompt's own: in Python the prompt's function (a docstring
    only) is complete as it stands; in JavaScript its open brace is closed first. Code without the function's
    definition is taken as its body."""
    code = extract_code(problem, answer)
    defines = (
        re.search(rf"^\s*def {re.escape(problem.entry_point)}\s*\(", code, re.MULTILINE)
        if problem.language == "python"
        else re.search(rf"function\s+{re.escape(problem.entry_point)}\s*\(|\b{re.escape(problem.entry_point)}\s*=", code)
    )
    if not defines:
        return code
    if problem.language == "python":
        return f"\n{code}"
    # `const f = ...` after the prompt's `function f` is a redeclaration error; `var f = ...` just reassigns.
    return "}\n" + re.sub(rf"\b(?:const|let)\s+({re.escape(problem.entry_point)})\s*=", r"var \1 =", code)


def extract_code(problem: Problem, answer: str) -> str:
    """The fenced block that defines the entry point, else the first fenced block, else the whole answer."""
    blocks = [body for _, body in FENCE.findall(answer)]
    for body in blocks:
        if problem.entry_point in body:
            return body
    return blocks[0] if blocks else answer


def first_model(base_url: str, api_key: str | None) -> str:
    """The endpoint's first model id (`/v1/models`), for when `--model` is not given."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()["data"][0]["id"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
        raise CliError(f"--endpoint {base_url}: cannot list its models ({error}); pass --model") from None
