"""A longer fuzzing run of the compiler than the test suite's bounded one (tests/compiler/test_hostile_specs.py).

Runs the same hypothesis properties with many more examples and prints how many
cases were tried and how long it took. Any uncaught exception or unlocated
diagnostic fails loudly with the falsifying example.

    python bench/fuzz_compiler.py [EXAMPLES_PER_PROPERTY] [HOSTILE_FILES]

Then it writes HOSTILE_FILES (default 60) task files drawn from the classes of
unbounded work issue #12 found (huge generation counts, nested lambdas over big
lexicons, descriptions copied into every prompt, template arithmetic and loops,
catastrophic regular expressions, alias bombs) and runs `taskc check` on each in
a child process limited to 2 GiB and 15 s, as CI would: each must end with exit
0, 1 or 2, never a hang, a MemoryError or exit 70.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_hostile_specs as properties  # noqa: E402


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    tried = {"rules": 0, "mutants": 0}
    fuzz = settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
                    database=None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        @fuzz
        @given(expression=st.lists(properties.EXPRESSION_ALPHABET, min_size=1, max_size=40).map("".join))
        def rules(expression: str) -> None:
            tried["rules"] += 1
            quoted = expression.replace("\\", "\\\\").replace('"', '\\"')
            text = properties.KETO.replace(
                "rule: any(ingredients, i -> mentions(i, lexicon.starchy_fruit))", f'rule: "{quoted}"')
            properties._assert_located(properties._compile_text(root, text), text)

        @fuzz
        @given(data=st.data())
        def mutants(data: st.DataObject) -> None:
            tried["mutants"] += 1
            lines = properties.KETO.splitlines(keepends=True)
            for _ in range(data.draw(st.integers(1, 6))):
                if not lines:
                    break
                index = data.draw(st.integers(0, len(lines) - 1))
                junk = data.draw(st.text(alphabet=":-[]{}&*!|>'\"#% \tabc", max_size=8))
                lines[index] = junk + lines[index][data.draw(st.integers(0, len(lines[index]))):]
            text = "".join(lines)
            properties._assert_located(properties._compile_text(root, text), text)

        started = time.perf_counter()
        rules()
        mutants()
        elapsed = time.perf_counter() - started
    total = sum(tried.values())
    print(f"fuzzed {total} task files ({tried['rules']} rule texts, {tried['mutants']} mutated files) "
          f"in {elapsed:.1f} s: no crash, every diagnostic located")
    hostile(int(sys.argv[2]) if len(sys.argv) > 2 else 60)


HOSTILE_RULES = [
    "any(lexicon.big, a -> any(lexicon.big, b -> contains(dish, a)))",
    'matches(dish, "^(a?){28}a{28}$")', 'matches(dish, "(.*a){20}$")', 'matches(dish, ".*.*.*.*=")',
    'matches(dish, "((a{0,100}){0,100}){0,100}b")', 'matches(dish, "(a+)+$")', 'matches(dish, "(x+x+)+y")',
    "len([[], [dish]][1][0] * 3000000000) > 1", "startswith(dish, \"a\")",
]
HOSTILE_TEMPLATES = [
    "{{ (3 ** 1000000000) % 7 }}", "{{ 'a' * 3000000000 }}", "{{ [1] * 3000000000 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(9999) %}{% for j in range(9999) %}{{ i }}{% endfor %}{% endfor %}",
    "{{ task.description * 100000 }}", "{% for c in task.description %}{% for d in task.description %}"
    "{% endfor %}{% endfor %}",
]


def hostile_file(rng: random.Random, root: Path, index: int) -> Path:
    words = ", ".join(f"w{i}" for i in range(rng.choice((10, 2000, 5000))))
    rule = rng.choice(HOSTILE_RULES)
    counts = rng.choice(("", "  per_rationale: 1000000000000000000\n", "  per_rationale: 20000\n  per_call: 1\n",
                         "  temperature: .nan\n"))
    description = "x" * rng.choice((1, 600_000, 100_000))
    template = ""
    if rng.random() < 0.5:
        (root / f"t{index}.j2").write_text("{% block system %}" + rng.choice(HOSTILE_TEMPLATES)
                                           + "{% endblock %}{% block user %}u{% endblock %}")
        template = f"  templates: {{generation: t{index}.j2}}\n"
    text = (f"taskc: 1\ntask: {{name: t, description: {description}}}\ninput:\n  dish: {{type: string, "
            f"description: d}}\nlexicons:\n  big: [{words}]\nclasses:\n  a: {{description: A}}\n  b: "
            f"{{description: B}}\nrationales:\n" + "".join(
                f"  - id: r{k}\n    class: {'ab'[k % 2]}\n    text: t\n    rule: '{rule}'\n" for k in range(
                    rng.choice((2, 200))))
            + f"generate:\n  model: gpt-4o-mini\n{counts}{template}")
    if rng.random() < 0.15:
        text = "x: &d " + "y" * 1_400_000 + "\ny: [" + ", ".join(["*d"] * 2000) + "]\n"
    spec = root / f"h{index}.task.yaml"
    spec.write_text(text)
    return spec


def _limit_child() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def hostile(count: int) -> None:
    rng = random.Random(12)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index in range(count):
            spec = hostile_file(rng, root, index)
            started = time.perf_counter()
            try:
                done = subprocess.run([sys.executable, "-m", "taskc", "check", str(spec)], capture_output=True,
                                      text=True, timeout=15, preexec_fn=_limit_child)
            except subprocess.TimeoutExpired:
                raise SystemExit(f"HANG: taskc check {spec} took more than 15 s") from None
            seconds = time.perf_counter() - started
            worst = max(worst, seconds)
            if done.returncode not in (0, 1, 2) or "MemoryError" in done.stderr or "Traceback" in done.stderr:
                raise SystemExit(f"FAILED (exit {done.returncode}) on {spec}:\n{done.stderr[-2000:]}")
    print(f"checked {count} hostile task files under 2 GiB / 15 s each: all ended with exit 0/1/2 "
          f"(slowest {worst:.1f} s)")


if __name__ == "__main__":
    main()
