"""`matches` runs in linear time (RE2) and keeps Python `re`'s meaning (issue #12, bounded work).

Task files come from untrusted pull requests and `taskc check` evaluates their rules, so a pattern must
not be able to take exponential time. The catastrophic patterns run here in a subprocess with a generous
timeout: a regression to a backtracking engine fails with a timeout naming the pattern instead of hanging
the suite. The rest holds the new engine to Python `re`'s answers: on every `matches` pattern of the
example tasks over the example data, and on random texts with accented and non-Latin letters, digits,
hyphens, underscores and newlines.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
from spec_edits import edit
from taskc.compiler import expr_check
from taskc.compiler.driver import compile_task
from taskc.compiler.functions import FUNCTIONS, MAX_MATCH_INPUT, UnsafePattern, compile_pattern

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 20  # seconds for a whole subprocess; the matches themselves take milliseconds

# Pattern, then adversarial texts of 10,000 characters and what `re` would answer on each (given, not run:
# Python's `re` would take longer than the age of the universe on most of them).
CATASTROPHIC = [
    (r"^(a?){28}a{28}$", [("a" * 30, True), ("a" * MAX_MATCH_INPUT, False), ("á" * MAX_MATCH_INPUT, False)]),
    (r"(.*a){20}$", [("a" * 9_999 + "b", False), ("a" * MAX_MATCH_INPUT, True), ("é" * 9_999 + "a", False)]),
    (r".*.*.*.*=", [("x" * MAX_MATCH_INPUT, False), ("x" * 9_999 + "=", True), ("ü" * MAX_MATCH_INPUT, False)]),
    (r"(a+)+$", [("a" * 9_999 + "!", False), ("a" * MAX_MATCH_INPUT, True)]),
    (r"(a|aa)+$", [("a" * 9_999 + "!", False), ("a" * MAX_MATCH_INPUT, True)]),
    (r"(x+x+)+y", [("x" * MAX_MATCH_INPUT, False), ("x" * 9_999 + "y", True)]),
    (r"\b(\w+\s?)+\b!", [("é" * MAX_MATCH_INPUT, False), ("日本 " * 3_333, False), ("ab " * 3_333 + "!", False)]),
    (r"(?i)(\w|\d)*\s*\W*ß$", [("Ä1 " * 3_333 + "x", False), ("Ä1 " * 3_333 + "SS", False)]),
]
REFUSED = [  # patterns whose compiled form would be too large to run fast: refused at once, not run
    r"((a{0,100}){0,100}){0,100}b",
    r"(\w|\s){1000}!",
    r"a.{1000}b",
]

_RUN = textwrap.dedent("""
    import json, sys
    from taskc.compiler.functions import UnsafePattern, _matches, compile_pattern
    for pattern, texts in json.loads(sys.stdin.read()):
        print(json.dumps(pattern), flush=True)  # started: a pattern without a result line is the one that hung
        try:
            compiled = compile_pattern(pattern)
        except UnsafePattern as exc:
            print(json.dumps({"refused": str(exc)}), flush=True)
        else:
            print(json.dumps({"answers": [_matches(text, compiled) for text in texts]}), flush=True)
""")


@pytest.fixture(scope="module")
def isolated_outcomes() -> dict[str, dict]:
    """Each catastrophic pattern's answers, run in one subprocess (taskc imports once) under a timeout."""
    work = [(pattern, [text for text, _ in cases]) for pattern, cases in CATASTROPHIC]
    work += [(pattern, ["a" * MAX_MATCH_INPUT]) for pattern in REFUSED]
    try:
        done = subprocess.run([sys.executable, "-c", _RUN], input=json.dumps(work), text=True, capture_output=True,
                              timeout=TIMEOUT, check=True)
        output, hung = done.stdout, None
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        hung = TIMEOUT
    lines = [json.loads(line) for line in output.splitlines()]
    outcomes = {pattern: outcome for pattern, outcome in zip(lines[::2], lines[1::2], strict=False)}
    if hung is not None and len(lines) % 2:
        outcomes[lines[-1]] = {"hung": f"no answer within {hung} s: not linear time"}
    return outcomes


@pytest.mark.parametrize("pattern,cases", CATASTROPHIC, ids=[p for p, _ in CATASTROPHIC])
def test_catastrophic_patterns_answer_at_once_on_long_inputs(isolated_outcomes: dict, pattern: str,
                                                             cases: list) -> None:
    assert isolated_outcomes.get(pattern) == {"answers": [answer for _, answer in cases]}


@pytest.mark.parametrize("pattern", REFUSED)
def test_patterns_too_large_to_run_fast_are_refused(isolated_outcomes: dict, pattern: str) -> None:
    assert "too large" in isolated_outcomes.get(pattern, {}).get("refused", "")


TINY_TASK = """\
taskc: 1
task:
  name: tiny
  description: Is this dish keto?
input:
  dish: {type: string, description: Dish name, max_length: 80}
  ingredients: {type: "list[string]", description: Ingredients}
classes:
  keto: {description: Low carb}
  not_keto: {description: High carb}
lexicons:
  high_carb: [rice, pasta]
rationales:
  - id: starch
    class: not_keto
    text: Starch is not keto.
    rule: 'any(ingredients, i -> mentions(i, lexicon.high_carb)) or matches(dish, "PATTERN")'
    examples:
      - input: {dish: "DISH", ingredients: [eggs]}
  - id: fat
    class: keto
    text: Fat and protein are keto.
    rule: not any(ingredients, i -> mentions(i, lexicon.high_carb))
generate:
  model: gpt-4o-mini
  per_rationale: 10
"""


@pytest.mark.parametrize("pattern,dish", [
    (r"^(a?){28}a{28}$", "a" * 30),  # the issue's: 0.3 s to check, then 84 s to run on 30 characters
    (r"(.*a){20}$", "a" * 29 + "b"),
    (r"((a{0,100}){0,100}){0,100}b", "a" * 30),
])
def test_taskc_check_ends_quickly_on_a_catastrophic_rule(tmp_path: Path, pattern: str, dish: str) -> None:
    spec = tmp_path / "tiny.task.yaml"
    spec.write_text(edit(edit(TINY_TASK, "PATTERN", pattern), "DISH", dish), encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, "-m", "taskc", "check", str(spec)], capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"taskc check did not finish within 60 s on matches(dish, {pattern!r})")
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def _e028(pattern: str) -> tuple[str, str | None]:
    with pytest.raises(UnsafePattern) as caught:
        compile_pattern(pattern)
    return str(caught.value), caught.value.hint


@pytest.mark.parametrize("pattern,message", [
    (r"(a)\1", r"back-reference \1 at position 3 is not supported"),
    (r"(?P<x>a)b(?P=x)", "back-reference (?P=x) at position 9 is not supported"),
    (r"[\1](a)x\1", r"back-reference \1 at position 8 is not supported"),  # not the one in the class
    (r"cake(?=s)", "look-ahead (?=...) at position 4 is not supported"),
    (r"(?<!no )sugar", "negative look-behind (?<!...) at position 0 is not supported"),
    (r"(a)?(?(1)b|c)", "conditional group (?(...) at position 4 is not supported"),
])
def test_what_needs_backtracking_is_refused_with_its_position(pattern: str, message: str) -> None:
    refused, hint = _e028(pattern)
    assert refused.startswith(message)
    assert "matches() runs without backtracking, in time linear in the text" in refused
    assert hint is not None and "matches()" in hint


@pytest.mark.skipif(sys.version_info < (3, 11), reason="atomic groups and possessive repeats are Python 3.11+")
def test_backtracking_controls_are_refused() -> None:
    assert _e028("(?>ab)c")[0].startswith("atomic group (?>...) at position 0 is not supported")
    assert _e028("xa++")[0].startswith("possessive repetition at position 2 is not supported")


def test_the_checker_reports_e028_at_the_pattern(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.task.yaml"
    spec.write_text(edit(edit(TINY_TASK, "PATTERN", r"(\\w+) \\1"), "DISH", "x"), encoding="utf-8")
    result = compile_task(spec)
    (diagnostic,) = [d for d in result.diagnostics if d.code == "E028"]
    assert diagnostic.message.startswith(r"back-reference \1 at position 6 is not supported")
    assert diagnostic.hint and diagnostic.span.line == 17
    assert TINY_TASK.splitlines()[16][diagnostic.span.column - 1:].startswith('"PATTERN"')


def test_invalid_and_long_patterns_are_still_e028() -> None:
    assert _e028("(unclosed")[0].startswith("invalid regular expression: missing ), unterminated subpattern")
    assert _e028("a" * 501)[0] == "pattern is longer than 500 characters"


def test_the_reference_still_refuses_exponential_shapes_though_they_run_fast() -> None:
    # RE2 runs (a+)+ in linear time; the checker keeps reporting it because the language reference says so.
    assert compile_pattern("^(a+)+$").backtracking_risk == "nested repetition like (a+)+ can take exponential time"
    assert compile_pattern("(a|ab)*c").backtracking_risk == (
        "repeated alternation like (a|ab)* can take exponential time")
    assert compile_pattern(r"\bfried\b").backtracking_risk is None


MATCHES = FUNCTIONS["matches"].implementation


@pytest.mark.parametrize("text,pattern,expected", [
    ("cauliflower fried rice", "fried", True),  # anywhere, as re.search
    ("cauliflower fried rice", "^fried", False),
    ("cauliflower fried rice", "rice$", True),
    ("cauliflower fried rice", r"\bfried\b", True),
    ("cauliflower friedrice", r"\bfried\b", False),
    ("un café noir", r"\bcafé\b", True),  # Unicode \b: é is a word character
    ("un cafés noir", r"\bcafé\b", False),
    ("1 c. à café de sel", r"c\. à c(afé)?\b", True),
    ("½ tsp salt", r"^(½|1)\s*tsp\b", True),
    ("2 colheres de chá", r"colher(es)? de chá\b", True),
    ("naïve", r"^\w+$", True),
    ("日本語", r"^\w{3}$", True),
    ("٣ eggs", r"^\d", True),  # Arabic-Indic three is a digit
    ("non\u00a0breaking", r"non\sbreaking", True),
    ("snake_case-word", r"\bsnake_case\b", True),  # - is not a word character, _ is
    ("snake_case-word", r"\bcase\b", False),
    ("end\n", "end$", True),  # Python's $ holds before a last newline
    ("end\n\n", "end$", False),
    ("a\nb", "^b", False),
    ("a\nb", "(?m)^b", True),
    ("", r"\B", False),
    ("", "^$", True),
    ("K", "(?i)k", True),
    ("\u212a", "(?i)k", True),  # the Kelvin sign folds to k in Python's re
    ("x" * (MAX_MATCH_INPUT + 5) + "tail", "tail", False),  # only the first MAX_MATCH_INPUT characters
])
def test_matches_answers_as_python_re_does(text: str, pattern: str, expected: bool) -> None:
    assert (re.search(pattern, text[:MAX_MATCH_INPUT]) is not None) is expected
    assert MATCHES(text, compile_pattern(pattern)) is expected


def _example_patterns() -> list[str]:
    """Every pattern the checker sees while compiling the example tasks."""
    seen: list[str] = []
    real = expr_check.compile_pattern
    with mock.patch.object(expr_check, "compile_pattern", side_effect=lambda p: seen.append(p) or real(p)):
        for path in sorted(EXAMPLES.glob("*.task.yaml")) + sorted(EXAMPLES.glob("*/*.task.yaml")):
            assert compile_task(path).ok, path
    return sorted(set(seen))


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _example_texts() -> list[str]:
    """Every string of the example data, as it is and lower-cased (the rules match `lower(...)`)."""
    texts: set[str] = set()
    for path in sorted(EXAMPLES.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                for text in _strings(json.loads(line)):
                    texts.update((text, text.lower()))
    return sorted(texts)


PATTERNS = _example_patterns()
EXAMPLE_TEXTS = _example_texts()


def test_the_examples_have_patterns_and_data_to_hold_the_engine_to() -> None:
    assert len(PATTERNS) >= 4 and any("chá" in p for p in PATTERNS) and any(r"\b" in p for p in PATTERNS)
    assert len(EXAMPLE_TEXTS) > 5_000 and any(not t.isascii() for t in EXAMPLE_TEXTS)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_example_patterns_agree_with_python_re_on_the_example_data(pattern: str) -> None:
    old, new = re.compile(pattern), compile_pattern(pattern)
    disagree = [t for t in EXAMPLE_TEXTS if (old.search(t) is not None) != (new.search(t) is not None)]
    assert not disagree, disagree[:5]
    assert any(old.search(t) for t in EXAMPLE_TEXTS)  # the comparison saw matches, not only misses


ALPHABET = list("aeiounstcbdh  -_'.,/12") + list("éèàçüöñßøå") + ["ch", "á"] + list("日本語ДомΩλ٣½\n\t\u00a0\u0301")
WORDS = ["no bun", "without rice", "sans pain", "cuillère à café", "c. à c", "colher de chá", "colheres de chá",
         "½ tsp", "1/2 tsp", "pinch", "lettuce-wrap", "bunless", "sla", "ice", "lime_wedge", "MINT", "Café"]
EXTRA_PATTERNS = [
    r"\w+", r"^\w+$", r"\b\w{2}\b", r"\B\w\B", r"\d+", r"\D\d", r"\s\S", r"[\w-]+$", r"[^\W\d_]", r"^\W",
    r"(?i)café|CH", r"(?i)[à-ÿ]{2}", r"(?a)\w\b", r"(?a)\bé", "$", "^$", r"\n$", "(?m)^c", "(?m)h$", r"(?s)a.b",
    r"a.b", r"\Ae|e\Z", r"[^a-z ]+", r"(a|é)\b", r"\b(?:no|sans)\s+\w+", r"\S+\s*$",
]


def _random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = [rng.choice(WORDS) if rng.random() < 0.3 else rng.choice(ALPHABET) for _ in range(rng.randint(0, 9))]
        texts.append(("" if rng.random() < 0.5 else " ").join(parts))
    return texts


@pytest.mark.parametrize("pattern", PATTERNS + EXTRA_PATTERNS)
def test_patterns_agree_with_python_re_on_random_texts(pattern: str) -> None:
    old, new = re.compile(pattern), compile_pattern(pattern)
    texts = _random_texts(400, seed=sum(map(ord, pattern)))
    disagree = [t for t in texts if (old.search(t) is not None) != (new.search(t) is not None)]
    assert not disagree, disagree[:5]


def _random_pattern(rng: random.Random, depth: int = 0) -> str:
    atoms = ["a", "é", "ß", "_", "-", " ", ".", r"\w", r"\W", r"\d", r"\s", r"\S", "[a-z]", "[^a]", r"[\w-]", "日"]
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return rng.choice(atoms)
    if roll < 0.55:
        return rng.choice([r"\b", r"\B", "^", "$", r"\A", r"\Z"])
    if roll < 0.7:
        return _random_pattern(rng, depth + 1) + _random_pattern(rng, depth + 1)
    if roll < 0.8:
        return f"({_random_pattern(rng, depth + 1)}|{_random_pattern(rng, depth + 1)})"
    if roll < 0.93:
        return f"(?:{_random_pattern(rng, depth + 1)}){rng.choice(['*', '+', '?', '{2}', '{0,3}', '*?'])}"
    return f"(?{rng.choice('ims')}:{_random_pattern(rng, depth + 1)})"


def test_random_patterns_agree_with_python_re() -> None:
    rng = random.Random(12)
    checked = 0
    for _ in range(300):
        pattern = _random_pattern(rng) + _random_pattern(rng)
        try:
            compiled = compile_pattern(pattern)
        except UnsafePattern:  # `$` with and without (?m:...) in one pattern, say
            continue
        for text in _random_texts(20, seed=rng.randrange(1 << 30)):
            text = text[:8]  # `re` backtracks: short texts keep it quick on nested repeats
            assert (re.search(pattern, text) is not None) == (compiled.search(text) is not None), (pattern, text)
            checked += 1
    assert checked > 5_000


def test_a_lone_surrogate_is_an_ordinary_character() -> None:
    for pattern in (".", r"\W", "[^a]", "\ud800", r"\b"):
        assert (compile_pattern(pattern).search("\ud800") is not None) is (re.search(pattern, "\ud800") is not None)


def test_the_ascii_character_classes_are_those_re_matches_in_all_of_unicode() -> None:
    """Under the ASCII flag the classes are read off the first 128 characters only: exactly what `re`
    itself matches when it is shown every code point there is."""
    from taskc.compiler import functions

    every = "".join(chr(point) for point in range(functions._LAST_CODE_POINT + 1) if not 0xD800 <= point <= 0xDFFF)
    for escape, ranges in functions._categories(True).items():
        matched = {ord(m.group()) for m in re.finditer("(?a)" + escape, every)}
        assert matched == {point for lo, hi in ranges for point in range(lo, hi + 1)}, escape
