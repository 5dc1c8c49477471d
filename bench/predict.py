"""How fast `taskc predict` labels new inputs, and whether its memory stays flat.

Trains the keto example once (`taskc run`, offline), writes an input file of N
lines drawn from the example pool (every line made distinct by a number in the
dish name, a few lines broken on purpose), then runs `taskc predict` as a user
would, pinned to one core with one BLAS thread, at two sizes (N/10 and N). It
prints items/s (whole command, and without start-up: the rate past the first
size) and the peak RSS of each: flat memory means the two peaks are about equal.
The median of --repeat runs is printed with the range.

Aim (issue #10): at least 20,000 items/s on one core, memory flat on 1,000,000 lines.

    python bench/predict.py                 # 1,000,000 lines
    python bench/predict.py --lines 200000 --repeat 1
    python bench/predict.py --baseline OLD/.venv/bin/taskc   # and another version, alternately, with the ratio

On a shared machine absolute rates drift with the load; --baseline runs the two versions turn about on the
same inputs and the same trained run, so their ratio holds even when the rates do not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "keto.task.yaml"
POOL = ROOT / "examples" / "data" / "keto_pool.jsonl"
BROKEN_EVERY = 250_000


def taskc() -> list[str]:
    found = shutil.which("taskc", path=str(Path(sys.executable).parent)) or shutil.which("taskc")
    return [found] if found else [sys.executable, "-m", "taskc"]


def write_inputs(path: Path, lines: int, seed: int = 0) -> None:
    pool = [json.loads(line) for line in POOL.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for number in range(1, lines + 1):
            if number % BROKEN_EVERY == 0:
                out.write('{"dish": "broken line", "ingredients": [oops]}\n')
                continue
            item = dict(rng.choice(pool))
            item["dish"] = f"{item['dish']} {number % 997}"
            out.write(json.dumps(item, ensure_ascii=False) + "\n")


_PEAK_OF_CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
                  "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measure(run_dir: Path, inputs: Path, output: Path, executable: list[str] | None = None) -> tuple[float, float, int]:
    """(seconds, items/s, peak RSS in MiB) of one `taskc predict` on one core, in a fresh parent process so
    that its peak is its own (a process's children's ru_maxrss is the largest child it ever had)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = (executable or taskc()) + ["predict", str(run_dir), str(inputs), "-o", str(output), "-q"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0"] + command
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, *command], check=True, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = sum(1 for _ in output.open(encoding="utf-8"))
    return seconds, lines / seconds, int(done.stdout.split()[-1]) // 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spec", type=Path, default=SPEC,
                        help="a task file with the keto fields (default: the example; "
                             "tests/fixtures/keto_v1.task.yaml has 6 small rules instead of 16 large ones)")
    parser.add_argument("--baseline", metavar="TASKC",
                        help="another version's taskc executable, measured turn about with this one on the large "
                             "size (same inputs, same trained run); prints both medians and their ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        run_dir = work / "run"
        subprocess.run(taskc() + ["run", str(args.spec), "-o", str(run_dir), "-q"], check=False,
                       stdout=subprocess.DEVNULL)
        small, large = work / "small.jsonl", work / "large.jsonl"
        write_inputs(small, max(args.lines // 10, 1))
        write_inputs(large, args.lines)
        rows = {}
        for name, inputs in (("small", small), ("large", large)):
            runs = [measure(run_dir, inputs, work / "out.jsonl") for _ in range(args.repeat)]
            rows[name] = runs
        small_lines, large_lines = max(args.lines // 10, 1), args.lines
        for name, lines in (("small", small_lines), ("large", large_lines)):
            rates = [rate for _, rate, _ in rows[name]]
            peaks = [peak for _, _, peak in rows[name]]
            print(f"{lines:>9,} lines: {statistics.median(rates):>9,.0f} items/s "
                  f"(range {min(rates):,.0f}–{max(rates):,.0f}), peak RSS {max(peaks)} MiB")
        marginal = [(large_lines - small_lines) / (big[0] - little[0])
                    for big, little in zip(rows["large"], rows["small"], strict=True) if big[0] > little[0]]
        if marginal:
            print(f"without start-up (the {large_lines - small_lines:,} extra lines): "
                  f"{statistics.median(marginal):,.0f} items/s (median of {len(marginal)})")
        if args.baseline:
            ours, theirs = [], []
            for _ in range(args.repeat):
                theirs.append(measure(run_dir, large, work / "out.jsonl", [args.baseline])[1])
                ours.append(measure(run_dir, large, work / "out.jsonl")[1])
            print(f"side by side on {large_lines:,} lines, turn about: baseline {statistics.median(theirs):,.0f} "
                  f"items/s, this version {statistics.median(ours):,.0f} items/s, ratio "
                  f"{statistics.median(ours) / statistics.median(theirs):.2f}x (median of {args.repeat} each)")
        print("aim: >= 20,000 items/s on one core; peak RSS of the two sizes about equal (flat memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
