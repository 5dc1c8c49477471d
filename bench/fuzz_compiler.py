"""A longer fuzzing run of the compiler than the test suite's bounded one (tests/test_hostile_specs.py).

Runs the same hypothesis properties with many more examples and prints how many
cases were tried and how long it took. Any uncaught exception or unlocated
diagnostic fails loudly with the falsifying example.

    python bench/fuzz_compiler.py [EXAMPLES_PER_PROPERTY]
"""

from __future__ import annotations

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


if __name__ == "__main__":
    main()
