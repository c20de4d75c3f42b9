"""`codebooga eval`: score endpoints (or local GGUFs it serves itself) on executed code tasks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from codebooga.merge.shared.cli_error import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score OpenAI-compatible endpoints on HumanEval and HumanEval-JS, tests executed in a sandbox",
        description="Ask each endpoint (or each local model, served for the run) to solve coding problems, run "
        "the answers against the problems' tests in a bubblewrap sandbox and report pass@k, a paired comparison "
        "and the 4/2/1/0 ranking. Results are saved per sample in OUT/results.jsonl, so an interrupted run "
        "resumes. See docs/eval.md.",
    )
    target = parser.add_argument_group("what to score (any mix, at least one)")
    target.add_argument("--endpoint", action="append", default=[], metavar="URL",
                        help="an OpenAI-compatible API base URL, e.g. http://127.0.0.1:8000/v1 (repeatable)")  # fmt: skip
    target.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="the model to ask at each --endpoint, in the same order (one applies to all); "
                        "default: the endpoint's first model")  # fmt: skip
    target.add_argument("--serve", action="append", default=[], metavar="GGUF",
                        help="a local GGUF to serve with `codebooga serve` for the run, or `embedded` for the "
                        "bundled test model (repeatable)")  # fmt: skip
    target.add_argument("--recipe", action="append", default=[], metavar="RECIPE",
                        help="a merge recipe (file or shipped name): built with `codebooga build --quant QUANT`, "
                        "then served and scored like --serve (repeatable; ranks merge variants)")  # fmt: skip
    target.add_argument("--quant", default="Q4_K_M", metavar="TYPE", help="quantization of --recipe builds (default Q4_K_M)")
    target.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for those servers, e.g. --serve-arg=--ctx-size=4096 (repeatable)")  # fmt: skip
    target.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="bearer token [OPENAI_API_KEY]")
    problems = parser.add_argument_group("problems")
    problems.add_argument("--suite", action="append", default=[], metavar="NAME|PATH",
                          help="humaneval, humaneval-js, or a HumanEval-format .jsonl[.gz] (repeatable; default: "
                          "humaneval and humaneval-js)")  # fmt: skip
    problems.add_argument("--limit", type=int, help="only the first N problems of each suite")
    problems.add_argument("--problems", help="only these task ids or numbers, comma-separated (e.g. 0,HumanEval/5)")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--mode", choices=("completion", "chat"), default="completion",
                          help="completion: raw prompt to /v1/completions (HumanEval's way); chat: an instruction "
                          "through /v1/chat/completions, code block extracted (default: completion)")  # fmt: skip
    sampling.add_argument("--samples", type=int, default=1, help="samples per problem, n of pass@k (default 1)")
    sampling.add_argument("--temperature", type=float, default=0.0, help="default 0 (greedy); use ~0.8 with --samples")
    sampling.add_argument("--preset", help="a codebooga sampling preset sent with each request (codebooga servers)")
    sampling.add_argument("--seed", type=int, default=0, help="seed of sample 0; sample i uses seed+i (default 0)")
    sampling.add_argument("--max-tokens", type=int, default=512, help="per answer (default 512)")
    running = parser.add_argument_group("running")
    running.add_argument("--parallel", type=int, default=4, help="requests in flight per endpoint (default 4)")
    running.add_argument("--timeout", type=float, default=15.0, help="wall-clock seconds per test program (default 15)")
    running.add_argument("--out", type=Path, default=Path("eval-results"), help="output folder (default eval-results)")
    running.add_argument("--human-rankings", action="append", default=[], type=Path, metavar="JSON",
                         help="a compare-mode export of the playground (/ui) to report next to the scores; repeatable")
    running.add_argument("--unsafe-no-sandbox", action="store_true",
                         help="run generated code without bubblewrap (only rlimits and a wall clock): only for "
                         "code you trust, on a machine you can lose")  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from codebooga.server.eval.client import Endpoint, EndpointClient, Sampling, first_model
    from codebooga.server.eval.execution import check_interpreters
    from codebooga.server.eval.human_rankings import RankingsError, load_rankings
    from codebooga.server.eval.local_server import served
    from codebooga.server.eval.report import build_report, write_reports
    from codebooga.server.eval.results import ResultStore
    from codebooga.server.eval.runner import RunPlan, run_endpoint
    from codebooga.server.eval.sandbox import Limits, Sandbox, SandboxUnavailable
    from codebooga.server.eval.suites import load_suite, select

    _check_args(args)
    try:
        human = [load_rankings(path) for path in args.human_rankings]
    except RankingsError as error:
        raise CliError(str(error)) from None
    try:
        sandbox = Sandbox.open(unsafe=args.unsafe_no_sandbox)
    except SandboxUnavailable as error:
        raise CliError(str(error)) from None
    suites = args.suite or ["humaneval", "humaneval-js"]
    task_ids = [task.strip() for task in args.problems.split(",")] if args.problems else None
    problems = [p for suite in suites for p in select(load_suite(suite), args.limit, task_ids)]
    if not problems:
        raise CliError("no problems selected: check --problems and --limit")
    check_interpreters(problem.language for problem in problems)
    plan = RunPlan(
        problems=problems, samples=args.samples, seed=args.seed,
        sampling=Sampling(args.mode, args.temperature, args.max_tokens, args.preset),
        parallel=args.parallel, limits=Limits(wall_seconds=args.timeout),
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(args.out / "results.jsonl")
    labels: list[str] = []

    def score(endpoint: Endpoint) -> None:
        labels.append(endpoint.label)
        client = EndpointClient(endpoint)
        try:
            run_endpoint(client, plan, sandbox, store)
        except SandboxUnavailable as error:
            raise CliError(f"{error}; the results so far are kept in {store.path}: rerun to resume") from None
        finally:
            client.close()

    for index, url in enumerate(args.endpoint):
        model = _model_for(args.model, index) or first_model(url, args.api_key)
        score(Endpoint(url, model, f"{model}@{url}", args.api_key))
    for model_path in [*args.serve, *(_built(recipe, args.quant) for recipe in args.recipe)]:
        print(f"codebooga eval: serving {model_path} for the run", file=sys.stderr)
        with served(model_path, args.serve_arg) as url:
            score(Endpoint(url, first_model(url, None), Path(model_path).name))

    results = store.select(plan.settings, labels, {problem.task_id for problem in problems})
    run_info = {
        "suites": suites, "settings": plan.settings, "samples": args.samples, "seed": args.seed,
        "sandbox": "bubblewrap" if sandbox.confined else "NONE (--unsafe-no-sandbox)",
    }  # fmt: skip
    written = write_reports(build_report(results, labels, run_info, human), args.out)
    print((args.out / "report.md").read_text())
    print("written: " + ", ".join(str(path) for path in written), file=sys.stderr)
    return 0


def _built(recipe: str, quant: str) -> str:
    from codebooga.merge.gguf.cli import build_gguf

    print(f"codebooga eval: building {recipe} ({quant})", file=sys.stderr)
    return str(build_gguf(recipe, quant))


def _check_args(args: argparse.Namespace) -> None:
    if not args.endpoint and not args.serve and not args.recipe:
        raise CliError("nothing to score: give --endpoint URL, --serve GGUF (or --serve embedded) or --recipe RECIPE")
    if len(args.model) > 1 and len(args.model) != len(args.endpoint):
        raise CliError(f"{len(args.model)} --model for {len(args.endpoint)} --endpoint: give one, or one each")
    for name, value in (("--samples", args.samples), ("--parallel", args.parallel), ("--max-tokens", args.max_tokens)):
        if value < 1:
            raise CliError(f"{name} must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1")


def _model_for(models: list[str], index: int) -> str | None:
    if not models:
        return None
    return models[0] if len(models) == 1 else models[index]
