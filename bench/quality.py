"""How good the keto example's predictors are on held-out gold sets unlike its own.

Runs `taskc run examples/keto.task.yaml --gold FILE` (offline) for the project's
own gold set and for each held-out set in bench/data/ (dish names only, the way
a menu or a nutrition database lists them; raw recipe lines, some not in
English; see bench/data/README.md), and prints every predictor's macro-F1 and
accuracy over all items (abstentions counted as errors) with the 95% bootstrap
interval and coverage. The held-out sets were written by hand for this project
and are never used as a pool or to write rules from; a score on them is an
estimate with the interval shown, not a promise about other data.

Aims (issue #10): the primary predictor at least 0.85 macro-F1 on dish names and
0.75 on recipes; on the project's own gold at least as good as the rules alone.

    python bench/quality.py
    python bench/quality.py --gold my_gold.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "keto.task.yaml"
SETS = {"own gold (examples/data/keto_gold.jsonl)": None,
        "dish names (bench/data/keto_names_gold.jsonl)": ROOT / "bench" / "data" / "keto_names_gold.jsonl",
        "recipes (bench/data/keto_recipes_gold.jsonl)": ROOT / "bench" / "data" / "keto_recipes_gold.jsonl"}


def taskc() -> list[str]:
    found = shutil.which("taskc", path=str(Path(sys.executable).parent)) or shutil.which("taskc")
    return [found] if found else [sys.executable, "-m", "taskc"]


def run(gold: Path | None, run_dir: Path) -> dict:
    command = taskc() + ["run", str(SPEC), "-o", str(run_dir), "--json"] + (["--gold", str(gold)] if gold else [])
    done = subprocess.run(command, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    if done.returncode not in (0, 3):
        raise SystemExit(f"taskc run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gold", action="append", type=Path, help="score on this gold file too (repeatable)")
    args = parser.parse_args()
    sets = dict(SETS) | {str(path): path for path in args.gold or ()}
    with tempfile.TemporaryDirectory() as scratch:
        for number, (name, path) in enumerate(sets.items()):
            summary = run(path, Path(scratch) / str(number))
            primary = summary["criterion"]["predictor"] if summary.get("criterion") else "rules_then_model"
            print(f"\n{name}: {summary['gold_items']} items")
            print(f"  {'predictor':<20} {'macro-F1':>8}  {'95% CI':<13} {'accuracy':>8}  {'coverage':>8}")
            for predictor, scores in summary["metrics"].items():
                m = scores["all"]
                f1 = "n/a" if m["macro_f1"] is None else f"{m['macro_f1']:.3f}"
                ci = "n/a" if m["macro_f1_ci"] is None else f"{m['macro_f1_ci'][0]:.3f}–{m['macro_f1_ci'][1]:.3f}"
                accuracy = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.1%}"
                marker = " *" if predictor == primary else ""
                print(f"  {predictor + marker:<20} {f1:>8}  {ci:<13} {accuracy:>8}  {m['coverage']:>8.1%}")
    print("\n* primary predictor; every score over all items, abstentions counted as errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
