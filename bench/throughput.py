"""Benchmark of the generation runtime against the fake OpenAI server (not a test; prints numbers).

1. Throughput: a plan of 2,000 calls (the keto task with larger counts) against the fake server with
   100 ms latency, at concurrency 8, 32 and 128: achieved calls/s beside the ideal (concurrency / latency),
   the median of --repeat runs with their range. Aim: at least 0.9 of ideal at concurrency 32. At 128 the
   runtime's one core is the limit (about 2.3 ms of CPU per call, mostly the openai client and its HTTP
   stack), so the ratio there says how much CPU a call costs, not how well the slots are used.
2. Rate cap: the same server with an RPM cap; achieved requests per minute against the cap (aim: 0.95).
3. Memory: 100,000 examples through validation, labeling-function votes and dedupe; peak traced memory.

The server runs in its own process (`python tests/fake_openai`), so its work does not compete with the
runtime for the interpreter lock. The fake sends each answer at arrival + latency, its own work included.
Run from the repository root:  python bench/throughput.py [--quick] [--repeat N] [--only PART]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from taskc.compiler.driver import CompiledTask, compile_task
from taskc.runtime.dedupe import Deduplicator
from taskc.runtime.generation import GenerationOptions, run_generation
from taskc.runtime.provider import ProviderSettings
from taskc.runtime.validate import ExampleValidator

ROOT = Path(__file__).resolve().parent.parent
LATENCY = 0.1


def plan_of_2000_calls(work: Path) -> CompiledTask:
    """The keto task with one example per call: 6 rationales x 200 + 6 near-miss cells x 100 + 2 x 100."""
    spec = yaml.safe_load((ROOT / "examples" / "keto.task.yaml").read_text(encoding="utf-8"))
    spec["generate"].update(per_call=1, per_rationale=200, near_misses=100, per_class=100)
    project = work / "project"
    shutil.copytree(ROOT / "examples" / "data", project / "data")
    (project / "keto.task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    result = compile_task(project / "keto.task.yaml")
    if result.compiled is None:
        raise SystemExit(f"the benchmark task did not compile: {result.diagnostics[:3]}")
    return result.compiled


class FakeServerProcess:
    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fake_openai"), "--port", "0", "--latency", str(latency)],
            stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def timed_run(compiled: CompiledTask, work: Path, base_url: str, concurrency: int, rpm: int | None = None
              ) -> tuple[Any, float, float]:
    """Run the plan into a fresh directory; return the summary, wall seconds and this process's CPU seconds."""
    run_dir = Path(tempfile.mkdtemp(dir=work))
    settings = ProviderSettings(base_url=base_url, api_key="sk-bench", model=None, timeout=30.0,
                                concurrency=concurrency, rpm=rpm)
    options = GenerationOptions(quiet=True)
    started, cpu = time.perf_counter(), time.process_time()
    summary = run_generation(compiled, run_dir, settings, options)
    return summary, time.perf_counter() - started, time.process_time() - cpu


def bench_throughput(compiled: CompiledTask, work: Path, levels: list[int], repeat: int) -> None:
    server = FakeServerProcess(LATENCY)
    try:
        print(f"throughput: {len(compiled.plan)} calls, fake server latency {LATENCY * 1000:.0f} ms, "
              f"median of {repeat} runs per level (range in brackets)")
        print("  (calls/s over the call phase; 'total' adds validation, dedupe and writing the files)")
        print("  (cpu ms/call: CPU time per call of the runtime process and of the server process)")
        print(f"  {'concurrency':>11} {'calls s':>8} {'total s':>8} {'calls/s':>8} {'ideal':>7} {'ratio':>6} "
              f"{'(range)':>13} {'failed':>6} {'cpu ms/c':>9} {'srv ms/c':>9}")
        for concurrency in levels:
            runs = []
            for _ in range(repeat):
                server_cpu = server.cpu_seconds()
                summary, seconds, cpu = timed_run(compiled, work, server.base_url, concurrency)
                server_cpu = server.cpu_seconds() - server_cpu
                call_seconds = json.loads(summary.paths["stats"].read_text())["seconds"]["calls"]
                runs.append((summary.calls_made / call_seconds, call_seconds, seconds, summary.calls_failed,
                             cpu / summary.calls_made * 1000, server_cpu / summary.calls_made * 1000))
            ideal = concurrency / LATENCY
            rates = sorted(run[0] for run in runs)
            rate, call_seconds, seconds, _failed, cpu_ms, server_ms = sorted(runs)[len(runs) // 2]
            failed = sum(run[3] for run in runs)
            spread = f"[{rates[0] / ideal:.2f}-{rates[-1] / ideal:.2f}]"
            print(f"  {concurrency:>11} {call_seconds:>8.2f} {seconds:>8.2f} {rate:>8.1f} {ideal:>7.0f} "
                  f"{rate / ideal:>6.2f} {spread:>13} {failed:>6} {cpu_ms:>9.2f} {server_ms:>9.2f}")
    finally:
        server.stop()


def bench_rpm_cap(compiled: CompiledTask, work: Path, rpm: int, calls: int) -> None:
    server = FakeServerProcess(LATENCY)
    try:
        subset = dataclasses.replace(compiled, plan=compiled.plan[:calls])
        summary, seconds, _cpu = timed_run(subset, work, server.base_url, 64, rpm)
        seconds = json.loads(summary.paths["stats"].read_text())["seconds"]["calls"]
        achieved = summary.calls_made / seconds * 60
        print(f"rpm cap: {calls} calls, cap {rpm}/min: achieved {achieved:.0f}/min = {achieved / rpm:.3f} of the "
              f"cap, {summary.calls_failed} failed, {seconds:.1f} s of calls")
    finally:
        server.stop()


_SYLLABLES = ["ka", "lo", "mi", "ra", "ne", "to", "su", "vi", "do", "pe", "la", "qui", "zo", "ber", "an", "tel"]
_ADJECTIVES = ["smoky", "lemony", "garlicky", "creamy", "spicy", "herby", "crispy", "golden", "rustic", "zesty",
               "sunday", "weeknight", "mediterranean", "cajun", "tuscan", "nordic", "coastal", "village"]
_STYLES = ["skillet", "bake", "stir-fry", "bowl", "salad", "curry", "traybake", "soup", "gratin", "platter",
           "skewers", "stew", "frittata", "wraps", "casserole", "tartine", "pie", "roast"]
_PROTEINS = ["salmon", "chicken", "pork belly", "steak", "shrimp", "eggs", "cod", "lamb", "turkey", "tofu",
             "duck", "sardines", "scallops", "tuna", "venison", "halloumi", "tempeh", "mackerel"]
_SIDES = ["spinach", "butter", "heavy cream", "cheese", "avocado", "olive oil", "bacon", "zucchini", "kale",
          "cauliflower rice", "broccoli", "mushrooms", "garlic", "asparagus", "pesto", "capers", "thyme", "leeks",
          "fennel", "radishes", "celery", "cucumber", "walnuts", "almonds", "feta", "ricotta", "chard", "okra",
          "eggplant", "bell pepper", "shallots", "ginger", "chili", "lime", "tahini", "sesame oil", "miso"]
_CARBS = ["rice", "pasta", "bread", "potatoes", "corn", "honey", "sugar", "banana", "flour", "noodles", "oats"]


def synthetic_examples(count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Keto-like examples with a long tail of dish names (a made-up place or cook in each, as menus do);
    one in ten is a light variation of a recent one, so dedupe has real work."""
    rng = random.Random(seed)
    recent: list[dict[str, Any]] = []
    for _ in range(count):
        if recent and rng.random() < 0.1:
            base = rng.choice(recent)
            yield {**base, "dish": base["dish"] + rng.choice(["s", " ", "!", " dish"])}
            continue
        label = rng.choice(["keto", "not_keto"])
        protein = rng.choice(_PROTEINS)
        ingredients = [protein, *rng.sample(_SIDES, rng.randint(2, 7))]
        if label == "not_keto":
            ingredients.insert(rng.randint(0, len(ingredients)), rng.choice(_CARBS))
        place = "".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))).title()
        dish = f"{rng.choice(_ADJECTIVES).title()} {protein} {rng.choice(_STYLES)} {place}"
        example = {"dish": dish, "ingredients": ingredients, "label": label}
        recent = (recent + [example])[-50:]
        yield example


def bench_memory(compiled: CompiledTask, count: int) -> None:
    validator = ExampleValidator(compiled.ir)
    deduper = Deduplicator(compiled.ir.generate.dedupe, compiled.ir.field_names)
    accepted = rejected = duplicates = 0
    tracemalloc.start()
    started = time.perf_counter()
    for example in synthetic_examples(count):
        if validator.check(example) is not None:
            rejected += 1
            continue
        if deduper.add(validator.inputs(example)) is not None:
            duplicates += 1
            continue
        validator.votes(example, example["label"])
        accepted += 1
    seconds = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory: {count:,} examples through validation + votes + dedupe in {seconds:.1f} s (traced): "
          f"{accepted:,} accepted, {rejected:,} rejected, {duplicates:,} duplicates; "
          f"peak traced {peak / 2**20:.1f} MiB, process max RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke check")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per concurrency level; the median is shown (default 3: these machines are noisy)")
    parser.add_argument("--only", choices=["throughput", "rpm", "memory"], action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or ["throughput", "rpm", "memory"])
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        compiled = plan_of_2000_calls(work)
        if args.quick:
            compiled = dataclasses.replace(compiled, plan=compiled.plan[:300])
        if "throughput" in parts:
            bench_throughput(compiled, work, [8, 32, 128], 1 if args.quick else max(1, args.repeat))
        if "rpm" in parts:
            bench_rpm_cap(compiled, work, rpm=2400, calls=150 if args.quick else 400)
        if "memory" in parts:
            bench_memory(compiled, 10_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
