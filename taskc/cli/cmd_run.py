"""`taskc run`: the whole loop on one task file, ending in the expert's report and a pass/fail status."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from taskc.compiler.diagnostics import TaskcError
from taskc.compiler.driver import CompiledTask

from .extras import missing_run_extra
from .output import (
    EXIT_CRITERION_FAILED,
    EXIT_INPUT_ERRORS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME_FAILURE,
    EXIT_USAGE,
    errors_only,
    json_failure,
    print_diagnostics,
    use_color,
)
from .start_up import uncollected_start_up

if TYPE_CHECKING:
    from taskc.runtime.options import EndpointOptions, RunOptions

NAME = "run"
HELP = "run the loop: label the pool, train the local model, evaluate on gold, write the report"
DESCRIPTION = """\
Run a task end to end and write the expert's feedback report:

  1. generation of examples from the plan            (needs an LLM provider)
  2. the rationales' rules label the pool; a Dawid-Skene label model combines
     their votes (the LLM labels what the rules leave open, with a provider)
  3. a local model trains on the labeled data: the fields' words plus the expert's
     knowledge as features (lexicon mentions per field, rule votes)
  4. every predictor is scored on the gold set (eval.gold, or --gold FILE),
     all of them over every item, abstentions counted as errors, with 95%
     bootstrap intervals: the rules alone, the local model, the cascade
     rules_then_model (the rules where they fire, the model elsewhere; the
     default primary), and the prompted LLM / fine-tuned model with a
     provider. The gold set is split into a dev half (the report shows only
     its items) and a test half, on which the pass criterion is judged
  5. RUN_DIR gets labeled_pool.jsonl, model/ (what `taskc predict` serves),
     metrics.json, report.md and a self-contained report.html: how the gold
     set differs from the pool, the errors grouped by rationale, next steps

Without OPENAI_API_KEY or OPENAI_BASE_URL (or --base-url) the LLM steps are
skipped and everything else runs offline in seconds."""
EPILOG = """\
examples:
  taskc run examples/keto.task.yaml
  taskc run examples/keto.task.yaml --gold ~/held_out.jsonl -o runs/held_out
  OPENAI_BASE_URL=http://localhost:8000/v1 taskc run examples/keto.task.yaml --model qwen2.5-7b
  taskc run examples/keto.task.yaml --format json | jq .metrics.rules_then_model.all.macro_f1
  taskc predict runs/keto new_dishes.jsonl -o labelled.jsonl

exit status:
  0  the pass criterion holds (or the task has no gold set to judge)
  1  errors in the task file, the pool or the gold set (file:line messages)
  2  usage error (also: RUN_DIR is or holds a symbolic link, or another taskc run
     is using it: runs of one directory are serialised by a lock on RUN_DIR/.lock)
  3  the pass criterion does not hold on the primary predictor
  4  runtime failure (e.g. the LLM provider failed, the run's cache is damaged)

--max-calls / --max-cost bound the whole run (generation, LLM labeling of the
pool and evaluation together). When the budget runs out, the run still
finishes with what it has, says so in a note, and exits as above (0 or 3):
a budget stop is not a failure. Answered calls are cached, so rerunning with a
larger budget continues where it stopped. Calls in flight when --max-cost is
reached still finish: the run may pass it by at most --concurrency × the
dearest planned call (with --batch: the requests of a submitted batch at half
price); the run prints this bound when it starts.

A provider that fails a phase's first calls (as many as --concurrency) for good,
with no answer at all (no connection, every request past --request-timeout, an
HTTP error such as a wrong key or model), gets no more calls from that phase:
the run ends with exit 4 within one round of retries, not one per call."""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="the task file (*.task.yaml)")
    parser.add_argument("-o", "--output", metavar="RUN_DIR", help="run directory (default: runs/<task name>)")
    parser.add_argument("--gold", metavar="FILE", help="evaluate on this JSONL gold set instead of eval.gold")
    parser.add_argument("--answers", metavar="FILE",
                        help="the expert's answers to `taskc ask` (JSONL: input fields + label) instead of "
                             "pool.answers: expert labels in training and extra dev gold")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow the task's pool, gold, lexicon and template files outside its directory")
    llm = parser.add_argument_group("LLM provider (optional; OpenAI-compatible)")
    llm.add_argument("--base-url", metavar="URL", help="endpoint, e.g. a local vLLM/Ollama server "
                                                        "(default: $OPENAI_BASE_URL)")
    llm.add_argument("--model", metavar="M", help="use this model for every LLM call instead of the plan's")
    llm.add_argument("--concurrency", type=_positive_int, metavar="N", help="parallel requests (default 8)")
    llm.add_argument("--rpm", type=_positive_int, metavar="N", help="requests per minute limit")
    llm.add_argument("--tpm", type=_positive_int, metavar="N", help="tokens per minute limit")
    llm.add_argument("--max-cost", type=_positive_float, metavar="USD", help="stop new calls past this spend")
    llm.add_argument("--max-calls", type=_positive_int, metavar="N", help="stop after this many requests")
    llm.add_argument("--deadline", type=_positive_float, metavar="SECONDS",
                     help="start no LLM request after this many seconds and end the run (exit 4); answered calls "
                          "stay cached, so the same command continues")
    llm.add_argument("--request-timeout", type=_positive_float, metavar="SECONDS",
                     help="give up one request after this long and retry it (default 60; a local model on a CPU "
                          "may need more)")
    llm.add_argument("--finetune", action="store_true", help="also fine-tune (finetune section) and evaluate it")
    llm.add_argument("--finetune-max-wait", type=_positive_float, metavar="SECONDS",
                     help="wait at most this long for the fine-tuning job (default 7200); it keeps running, and "
                          "the same command picks it up again instead of starting another")
    llm.add_argument("--batch", action="store_true", help="make every call (generation, pool labeling, "
                                                          "gold scoring, the embeddings student's requests) through "
                                                          "the Batch API (half price, slower)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the verdict and the report path")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="json: a JSON summary on stdout instead of tables, and progress as JSON lines on stderr "
                             "(a \"phase\" event as each phase starts and ends, \"progress\" events for its calls)")
    parser.add_argument("--json", action="store_const", dest="format", const="json", help="the same as --format json")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):  # nan passes every comparison, inf would be no limit at all
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def _max_cost_refusal(compiled: CompiledTask, unpriced: list[tuple[str, str]]) -> str:
    """Why --max-cost cannot hold: models the run may call (``unpriced``, from `_unpriced_models`) have no
    price, so their calls would count as free against the limit."""
    import difflib

    from taskc.compiler import builtin_prices

    table = {**builtin_prices(), **dict(compiled.ir.generate.prices)}
    names = _named(unpriced)
    guesses = [f"'{guess[0]}' for '{model}'" for model, _ in unpriced
               if (guess := difflib.get_close_matches(model, list(table), n=1))]
    example = unpriced[0][0]
    return (f"--max-cost needs a price for every model the run calls, and there is none for {names}: its calls "
            f"would count as free. Price it in the task, e.g. generate.prices: {{{example}: {{input: 0.5, output: "
            f"1.5}}}} (USD per 1M input / output tokens), or add it to taskc's price table (compiler/prices.json)"
            + (f"; did you mean {', '.join(guesses)}?" if guesses else "."))


def _base_url_problem(option: str | None) -> str | None:
    """Why --base-url (or OPENAI_BASE_URL) is no endpoint's address, if it is not: it needs its scheme."""
    import os

    for value, name in ((option, "--base-url"), (os.environ.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL")):
        if value:
            scheme = value.split("://", 1)[0].lower() if "://" in value else None
            if scheme not in ("http", "https"):
                return (f"{name} must be an http:// or https:// address, got {value!r}"
                        + (f" (did you mean 'http://{value}'?)" if scheme is None else ""))
            return None  # --base-url wins over the environment
    return None


def _free_calls_notice(unpriced: list[tuple[str, str]]) -> str:
    """Without --max-cost, what to say of models the run calls that have no price (their calls show $0)."""
    return (f"no price for {_named(unpriced)}: the costs shown for its calls are $0, not what the provider "
            "charges; price it in the task's generate.prices (USD per 1M input / output tokens) to see them")


def _named(unpriced: list[tuple[str, str]]) -> str:
    return " and ".join(f"'{model}' ({source})" for model, source in unpriced)


def _unpriced_models(compiled: CompiledTask, args: argparse.Namespace) -> list[tuple[str, str]]:
    """(model, where it comes from) of every model the run may call that has no price."""
    from taskc.compiler import DEFAULT_EMBEDDING_MODEL, builtin_prices, price_for

    task = compiled.ir
    called = {job.model: "generate.model" for job in compiled.plan}
    called[task.generate.model] = "generate.model"  # pool labeling and the prompted baseline
    if args.model:
        called = {args.model: "--model"}
    if task.finetune.provider == "embeddings":
        called.setdefault(task.finetune.base_model or DEFAULT_EMBEDDING_MODEL, "finetune.base_model")
    elif task.finetune.provider == "openai" and args.finetune:  # the fine-tuned model is priced as its base
        called.setdefault(task.finetune.base_model or task.generate.model, "finetune.base_model")
    table = {**builtin_prices(), **dict(task.generate.prices)}
    return [(model, source) for model, source in called.items() if price_for(table, model) is None]


def run(args: argparse.Namespace) -> int:
    with uncollected_start_up() as started:  # started() once the compiled task is in
        try:
            return _run(args, started)
        finally:  # a model process the run started but did not train with (it failed first) ends with it
            started_one = sys.modules.get("taskc.runtime.model_process")  # none if the runtime was never loaded
            if started_one is not None:
                started_one.discard_early()


def _run(args: argparse.Namespace, started: Callable[[], None]) -> int:
    as_json = args.format == "json"
    if (missing := missing_run_extra(NAME)) is not None:
        return _failed(missing, EXIT_USAGE, as_json)
    from taskc.runtime import model_process, pipeline, report

    if args.output and _is_file(Path(args.output)):  # checked before any work: a usage mistake
        return _failed(f"RUN_DIR is a file, not a directory: {args.output}", EXIT_USAGE, as_json)
    endpoint = _endpoint_options(args)
    if (bad_url := _base_url_problem(endpoint.base_url)) is not None:  # a usage mistake, before any work
        return _failed(bad_url, EXIT_USAGE, as_json)
    # an offline run makes no LLM call: the calls that depend on the data need not be planned
    compile_options = {"allow_outside": args.allow_outside_paths, "plan_data": endpoint.configured}
    # On another core, the model process loads scikit-learn for the local model (runtime/model_process.py).
    # With an endpoint it compiles the task first, while this process loads the LLM client the calls need.
    if endpoint.configured:
        model_process.start_early(args.spec, **compile_options)
        from taskc.runtime import provider  # noqa: F401
    else:
        model_process.start_early()
    result = model_process.compiled(args.spec, **compile_options)
    started()
    diagnostics = errors_only(result.diagnostics, args.quiet)
    if as_json:  # events among the progress events; the warnings too, which a script may want to act on
        for diagnostic in diagnostics:
            print(json.dumps({"event": "diagnostic", **diagnostic.to_json()}, sort_keys=True), file=sys.stderr)
    else:
        print_diagnostics(diagnostics, result.sources, "text")
    if result.compiled is None:
        if as_json:
            json_failure("the task file has errors (see the diagnostic events)", EXIT_INPUT_ERRORS)
        return EXIT_INPUT_ERRORS
    compiled = result.compiled
    unpriced = _unpriced_models(compiled, args) if args.max_cost is not None or endpoint.configured else []
    if unpriced and args.max_cost is not None:  # before any work: a usage mistake
        return _failed(_max_cost_refusal(compiled, unpriced), EXIT_USAGE, as_json)
    if unpriced and endpoint.configured:
        _notice(args.quiet, as_json)(_free_calls_notice(unpriced))
    run_dir = Path(args.output or Path(getattr(args, "runs_root", None) or "runs") / compiled.ir.name)
    if _is_file(run_dir):
        return _failed(f"RUN_DIR is a file, not a directory: {run_dir}", EXIT_USAGE, as_json)
    from taskc.runtime.run_lock import RunDirError, check_run_dir, run_dir_lock

    try:
        check_run_dir(run_dir)
    except RunDirError as exc:
        return _failed(str(exc), exc.exit_status, as_json)
    options = _run_options(args, run_dir, endpoint)
    try:
        with run_dir_lock(run_dir):  # a second run on this directory would pay the same calls again
            outcome = pipeline.run(compiled, options, notice=_notice(args.quiet, as_json))
    except TaskcError as exc:  # a data file's problem (1), the provider's or the disk's (4), the run dir's
        return _failed(str(exc), exc.exit_status, as_json)
    except KeyboardInterrupt:
        kept = (f"completed LLM calls are cached in {run_dir}: run the same command again to resume"
                if endpoint.configured else "run the same command again")
        if as_json:
            json_failure(f"interrupted; {kept}", EXIT_INTERRUPTED)
        else:
            print(f"taskc: interrupted; {kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        where = exc.filename or run_dir
        return _failed(f"cannot write {where}: {exc.strerror or exc}. Nothing half-written was left behind; fix "
                       "the cause (free space, permissions) and run the same command again to resume.",
                       EXIT_RUNTIME_FAILURE, as_json)
    findings = outcome.findings or report.analyse_errors(outcome)
    if as_json:
        summary = outcome.summary_json() | {"next_steps": [s.title for s in findings.next_steps]}
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    elif args.quiet:
        print(f"{report.plain_verdict(outcome)}\nreport: {outcome.files['report_html']}")
    else:
        report.print_summary(outcome, findings, color=use_color(sys.stdout))
    if outcome.criterion is not None and not outcome.criterion.passed:
        return EXIT_CRITERION_FAILED
    return EXIT_OK


def _endpoint_options(args: argparse.Namespace) -> EndpointOptions:
    """The LLM endpoint's options from the command line (taskc.toml's defaults already applied)."""
    from taskc.runtime.options import EndpointOptions

    return EndpointOptions(base_url=args.base_url, model=args.model, concurrency=args.concurrency, rpm=args.rpm,
                           tpm=args.tpm, deadline=args.deadline, batch=args.batch,
                           request_timeout=args.request_timeout)


def _run_options(args: argparse.Namespace, run_dir: Path, endpoint: EndpointOptions) -> RunOptions:
    """The run's options, grouped by concern, from the command line: `endpoint` (from `_endpoint_options`), which
    decided how the task was compiled, and the other groups."""
    from taskc.runtime.options import BudgetOptions, FinetuneOptions, PathOptions, PresentationOptions, RunOptions

    return RunOptions(
        paths=PathOptions(run_dir=run_dir,
                          gold=Path(args.gold).expanduser() if args.gold else None,
                          answers=Path(args.answers).expanduser() if args.answers else None),
        endpoint=endpoint,
        budget=BudgetOptions(max_cost=args.max_cost, max_calls=args.max_calls),
        presentation=PresentationOptions(quiet=args.quiet, json_progress=args.format == "json"),
        finetune=FinetuneOptions(enabled=args.finetune, max_wait=args.finetune_max_wait))


def _is_file(path: Path) -> bool:
    return path.exists() and not path.is_dir()


def _notice(quiet: bool, as_json: bool = False) -> Callable[[str], None]:
    """Where the pipeline's notices go: stderr, except under --quiet (which promises only the verdict); with
    --format json as "message" events among the progress events."""
    if quiet:
        return lambda line: None
    if as_json:
        return lambda line: print(json.dumps({"event": "message", "text": line}), file=sys.stderr, flush=True)
    return lambda line: print(f"taskc: {line}", file=sys.stderr)


def _failed(message: str, status: int, as_json: bool) -> int:
    """End a run that has no outcome: ``message`` as `taskc: error:` lines on stderr, or with --format json
    as an "error" event on stderr and an {"error", "exit_status"} document on stdout; returns ``status``."""
    if as_json:
        json_failure(message, status)
    else:
        print("\n".join(f"taskc: error: {line}" for line in message.splitlines()), file=sys.stderr)
    return status
