"""Benchmark: compile time against the number of rationales (not a test: run it by hand or in CI logs).

Generates task files with 10, 100, 1,000 and 10,000 rationales, compiles each
in-process (best of several runs) and prints the time per size and the ratio
between consecutive sizes: with 10x more rationales the ratio should stay near
10 (linear) and never drift towards 100 (quadratic). Also times the keto example,
which should compile in well under 100 ms once the process is warm.

    python bench/compile_scaling.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from taskc.compiler.driver import compile_task

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10, 100, 1_000, 10_000)


def synthetic_spec(rationales: int) -> str:
    lines = [
        "taskc: 1",
        "task: {name: scaling, description: A synthetic task for the compile-time benchmark.}",
        "input:",
        "  dish: {type: string, description: Dish name, max_length: 80}",
        '  ingredients: {type: "list[string]", description: Ingredients}',
        "classes:",
        "  keto: {description: Low carb}",
        "  not_keto: {description: High carb}",
        "lexicons:",
        "  high_carb: [rice, pasta, bread, potato, corn, oats]",
        "rationales:",
    ]
    for index in range(rationales):
        cls = "keto" if index % 2 else "not_keto"
        lines += [
            f"  - id: r{index}",
            f"    class: {cls}",
            f"    text: Rationale number {index} about ingredient{index} and its carbohydrate load.",
            f'    rule: any(ingredients, i -> mentions(i, lexicon.high_carb) or contains(i, "x{index}"))',
        ]
    lines += [
        "constraints:",
        "  - {id: short, check: len(dish) <= 80}",
        "generate: {model: gpt-4o-mini, per_rationale: 10, per_call: 10, seed: 1}",
        "finetune: {provider: local}",
    ]
    return "\n".join(lines) + "\n"


def best_time(path: Path, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = compile_task(path)
        timings.append(time.perf_counter() - started)
        assert result.ok, result.diagnostics[:3]
    return min(timings)


def main() -> None:
    best_time(ROOT / "examples" / "keto.task.yaml", 1)  # warm imports and the grammar
    keto = [best_time(ROOT / "examples" / "keto.task.yaml", 1) for _ in range(15)]
    print(f"keto example: median {statistics.median(keto) * 1000:.1f} ms, best {min(keto) * 1000:.1f} ms "
          "(target: well under 100 ms)")
    print(f"{'rationales':>10} {'seconds':>9} {'ms/rationale':>13} {'ratio to previous':>18}")
    previous = None
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            path = Path(tmp) / f"scale{size}.task.yaml"
            path.write_text(synthetic_spec(size), encoding="utf-8")
            seconds = best_time(path, 3 if size <= 1_000 else 1)
            ratio = "" if previous is None else f"{seconds / previous:.1f}x (size 10x)"
            print(f"{size:>10} {seconds:>9.3f} {seconds * 1000 / size:>13.3f} {ratio:>18}")
            previous = seconds


if __name__ == "__main__":
    main()
