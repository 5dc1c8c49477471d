"""`taskc compile`: write the compiled outputs of a task file (prompts, plan, configs, manifest)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taskc.compiler import EMBEDDING_TOKENS_PER_TEXT, EmbeddingsStudentConfig
from taskc.compiler.driver import compile_task, dump_ir, write_outputs
from taskc.compiler.money import format_usd

from .estimate_text import estimate_extras, estimate_lines
from .output import add_format_argument, add_prices_argument, load_prices, print_diagnostics

NAME = "compile"
HELP = "compile a task file into prompts, a generation plan and configs"
DESCRIPTION = """\
Compile a task file into deterministic, diff-friendly files:

  prompts/generate/<class>/<rationale>.md  one generation prompt per (class, rationale) cell
  prompts/generate/<class>/_class.md       free examples of a class (generate.per_class)
  prompts/classify.md                      the classification prompt with every rationale
  plan.json                                every LLM call a run makes (generation, pool
                                           labeling, gold scoring): model, sampling, seed,
                                           cache key, tokens and price; plus the estimate
  finetune.json                            the fine-tuning job body and message layout
  eval.json                                gold set, metrics and the compiled pass criterion
  manifest.json                            taskc version and hashes of inputs and outputs

Two compiles of the same inputs are byte-identical. The summary shows the
planned calls and an ESTIMATE of tokens and cost from a price table
(generate.prices in the task file, or --prices FILE)."""
EPILOG = """\
examples:
  taskc compile examples/keto.task.yaml -o build/keto
  taskc compile examples/keto.task.yaml --dump-ir | less
  taskc compile examples/keto.task.yaml -o build --prices prices.json

exit status: 0 compiled, 1 errors in the task file, 2 usage error, 4 the output could not be written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="the task file (*.task.yaml)")
    parser.add_argument("-o", "--output", metavar="DIR", help="output directory (default: build/<task name>)")
    add_format_argument(parser)
    parser.add_argument("--dump-ir", action="store_true", help="print the IR as JSON and write nothing")
    add_prices_argument(parser)
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow files named by the task to live outside its directory")


def run(args: argparse.Namespace) -> int:
    prices = load_prices(args.prices)
    out_dir = Path(args.output or "build")
    if args.output and out_dir.exists() and not out_dir.is_dir():
        print(f"taskc: error: {out_dir} is a file, not a directory", file=sys.stderr)
        return 2
    result = compile_task(args.spec, allow_outside=args.allow_outside_paths, prices=prices,
                          emit=not args.dump_ir)
    print_diagnostics(result.diagnostics, result.sources, args.format)
    if args.dump_ir:
        if result.task is None or not result.ok:
            return 1
        sys.stdout.write(dump_ir(result.task))
        return 0
    if result.compiled is None:
        return 1
    compiled = result.compiled
    out_dir = Path(args.output) if args.output else out_dir / compiled.ir.name
    try:
        write_outputs(compiled.files, out_dir)
    except OSError as exc:
        print(f"taskc: error: cannot write {exc.filename or out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 4
    if args.format == "text":
        estimate = compiled.estimate
        cost = "unknown (model not in the price table)" if estimate.cost_usd is None else format_usd(estimate.cost_usd)
        print(f"compiled {compiled.ir.name}: {len(compiled.files)} files in {out_dir}/")
        calls = f"{estimate.calls} LLM call{'s' if estimate.calls != 1 else ''}"
        examples = f"{estimate.examples} example{'s' if estimate.examples != 1 else ''}"
        print(f"  plan: {calls} for {examples} with {estimate.model}")
        for line in estimate_lines(compiled):
            print(f"    {line}")
        print(f"  ESTIMATE: ~{estimate.input_tokens:,} input + ~{estimate.output_tokens:,} output tokens, "
              f"~{cost} (rough: ~4 characters per token)"
              + ("" if estimate.batch_cost_usd is None else f"; with --batch ~${estimate.batch_cost_usd:.4f}"))
        for line in estimate_extras(compiled):
            print(f"  {line}")
        student = compiled.finetune.student
        if isinstance(student, EmbeddingsStudentConfig):
            price = student.usd_per_1000_texts
            priced = ("unknown (model not in the price table)" if price is None
                      else f"~{format_usd(price)} per 1,000 texts")
            print(f"  student: embeddings from {student.model}, {student.inputs_per_request} texts a request, "
                  f"{priced} of ~{EMBEDDING_TOKENS_PER_TEXT} tokens (each text once per run: cached)")
    return 0
