"""Shared helpers of the runtime tests: a keto-aware responder for the fake server, and the compiled plan.

The fake server's default responder follows the JSON Schema but writes word salad,
which the keto constraints mostly reject. `keto_responder` answers generation
requests the way a decent model would: it reads the target class and the count
from the prompt and draws dishes from word lists keyed by the request's seed, so
the same request always gets the same answer. A few answers carry a too-short
ingredient list (rejected by validation) or a repeated dish (a duplicate), so
those paths are exercised on every run. The tests below check the responder itself.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import openai
import pytest
from taskc.compiler.driver import CompiledTask, compile_task
from taskc.runtime.provider import ProviderSettings, transport

ROOT = Path(__file__).resolve().parent.parent
KETO_SPEC = ROOT / "tests" / "fixtures" / "keto_v1.task.yaml"  # frozen: see its header
API_KEY = "sk-test-Zq8rV3kL0pW6nT1yXc4bM9"  # a made-up key the tests look for in every written file

PROTEINS = ["salmon", "chicken thighs", "pork belly", "ribeye steak", "shrimp", "eggs", "cod", "lamb chops",
            "turkey", "duck breast", "tofu", "sardines", "beef mince", "scallops", "tuna"]
KETO_SIDES = ["spinach", "butter", "heavy cream", "cheese", "avocado", "olive oil", "bacon", "zucchini",
              "cauliflower rice", "broccoli", "mushrooms", "garlic", "kale", "asparagus", "almond flour",
              "cream cheese", "pesto", "capers", "lemon zest", "thyme"]
CARBS = ["rice", "pasta", "bread", "potatoes", "corn", "honey", "sugar", "banana", "flour", "noodles", "beans",
         "mango", "maple syrup", "tortillas", "lentils"]
STYLES = ["skillet", "bake", "stir-fry", "bowl", "salad", "curry", "traybake", "soup", "gratin", "platter",
          "skewers", "stew", "frittata", "wraps", "casserole"]
ADJECTIVES = ["Smoky", "Lemony", "Garlicky", "Creamy", "Spicy", "Herby", "Crispy", "Golden", "Rustic", "Zesty",
              "Sunday", "Weeknight", "Mediterranean", "Cajun", "Tuscan"]


def _target(body: dict[str, Any]) -> tuple[str, int]:
    text = "\n".join(m.get("content", "") for m in body.get("messages", []) if isinstance(m, dict))
    match = re.search(r'Write (\d+) new, diverse examples of class "([^"]+)"', text)
    return (match.group(2), int(match.group(1))) if match else ("keto", 3)


def keto_example(rng: random.Random, label: str) -> dict[str, Any]:
    protein = rng.choice(PROTEINS)
    ingredients = [protein, *rng.sample(KETO_SIDES, rng.randint(2, 5))]
    if label == "not_keto":
        ingredients.insert(rng.randint(0, len(ingredients)), rng.choice(CARBS))
    dish = f"{rng.choice(ADJECTIVES)} {protein} {rng.choice(STYLES)}"
    return {"dish": dish, "ingredients": ingredients, "label": label}


def keto_responder(body: dict[str, Any]) -> dict[str, Any]:
    """A plausible generation answer for ``body``, the same for the same request."""
    schema_name = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    rng = random.Random(f"{body.get('seed')}|{body.get('model')}|{schema_name}")
    if schema_name == "classification":
        return {"label": rng.choice(["keto", "not_keto"]), "rationales": []}
    label, count = _target(body)
    examples = [keto_example(rng, label) for _ in range(count)]
    roll = rng.random()
    if roll < 0.15:
        examples[-1] = {**examples[0], "dish": examples[0]["dish"].upper() + "!"}  # a duplicate after normalising
    elif roll < 0.25:
        examples[-1] = {**examples[-1], "ingredients": examples[-1]["ingredients"][:1]}  # breaks min_length
    return {"examples": examples}


def compiled_keto(tmp_path: Path) -> CompiledTask:
    """The frozen keto task compiled from a private copy, with two-row data files of its own."""
    project = tmp_path / "keto_project"
    (project / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(KETO_SPEC, project / "keto.task.yaml")
    for name in ("keto_pool.jsonl", "keto_gold.jsonl"):
        source = KETO_SPEC.parent / "data" / name
        target = project / "data" / name
        if source.exists():
            shutil.copy(source, target)
        else:
            rows = [{"dish": "Bacon and eggs", "ingredients": ["bacon", "eggs"], "label": "keto"},
                    {"dish": "Pancakes", "ingredients": ["flour", "sugar", "eggs"], "label": "not_keto"}]
            target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = compile_task(project / "keto.task.yaml")
    assert result.ok and result.compiled is not None, result.diagnostics
    return result.compiled


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret`` (SQLite files and WAL included)."""
    needle = secret.encode("utf-8")
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# -- the helpers are tested too -----------------------------------------------------------------------

def settings_for(server: Any, **overrides: Any) -> ProviderSettings:
    """Settings for the fake server, with short backoff and polls; ``overrides`` replace any of them."""
    values: dict[str, Any] = {"base_url": server.base_url, "api_key": API_KEY, "model": None,
                              "backoff_base": 0.01, "poll_interval": 0.01, "timeout": 5.0}
    return ProviderSettings(**{**values, **overrides})


def chat_requests(server: Any) -> list[dict[str, Any]]:
    """The bodies of the chat completion requests the fake server received, in order."""
    return [body for method, path, _headers, body in server.requests
            if method == "POST" and path.endswith("/chat/completions")]


def refuse_formats(server: Any, planned: list[dict[str, Any]], refused: tuple[str, ...], message: str,
                   answer_off_schema: bool = False) -> None:
    """Make ``server`` answer 400 with ``message`` to a request whose response_format type is in ``refused``
    ("none": sent without one), as a server without structured outputs (or JSON mode) does, and answer any
    other request as it would with its planned format: the one sent, or the one of ``planned`` whose schema
    the prompt holds (or, ``answer_off_schema``, with an answer that fails that schema)."""
    from fake_openai.server import ApiError
    from taskc.compiler import canonical_json

    answer = server._completion

    def picky(body: Any, fault: str | None) -> dict[str, Any]:
        sent = (body.get("response_format") or {}).get("type", "none")
        if sent in refused:
            raise ApiError(400, message, "invalid_request_error")
        if sent != "json_schema":
            prompt = body["messages"][0]["content"]
            body = {**body, "response_format": next(
                f for f in planned if canonical_json(f["json_schema"]["schema"]) in prompt)}
        return answer(body, "schema_violation" if answer_off_schema else fault)

    server._completion = picky


def refusing_parameter(server: Any, parameter: str, error: Any) -> None:
    """Make ``server`` raise ``error`` (an ApiError) for a request that sends ``parameter``."""
    answer = server._completion

    def picky(body: Any, fault: str | None) -> dict[str, Any]:
        if parameter in body:
            raise error
        return answer(body, fault)

    server._completion = picky


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def use_transport(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the client on the given HTTP transport: "aiohttp" (the default where installed) or "httpx",
    the fallback when the openai SDK was installed without its aiohttp extra."""
    if name == "httpx":
        def without_aiohttp(**_kwargs: object) -> None:
            raise RuntimeError("To use the aiohttp client you must have installed the package with the "
                               "`aiohttp` extra")

        monkeypatch.setattr(openai, "DefaultAioHttpClient", without_aiohttp)
    http_client = transport.http_client(2, 1.0)
    assert isinstance(http_client, openai.DefaultAsyncHttpxClient) == (name == "httpx")


TRANSPORTS = ["aiohttp", "httpx"]


def test_responder_reads_class_and_count_from_the_prompt(tmp_path: Path) -> None:
    compiled = compiled_keto(tmp_path)
    job = next(j for j in compiled.plan if j.target_class == "not_keto")
    body = {"model": job.model, "seed": job.seed, "response_format": job.response_format,
            "messages": compiled.prompts[job.prompt].as_chat()}
    answer = keto_responder(body)
    assert len(answer["examples"]) == job.examples
    assert {e["label"] for e in answer["examples"]} == {"not_keto"}
    assert answer == keto_responder(body)


def test_responder_keto_examples_mostly_pass_the_keto_constraints(tmp_path: Path) -> None:
    from taskc.runtime.validate import ExampleValidator

    validator = ExampleValidator(compiled_keto(tmp_path).ir)
    rng = random.Random(1)
    examples = [keto_example(rng, label) for label in ("keto", "not_keto") * 50]
    assert sum(validator.check(e) is None for e in examples) == len(examples)


@pytest.mark.parametrize("label", ["keto", "not_keto"])
def test_keto_example_labels_follow_the_carbs(label: str) -> None:
    example = keto_example(random.Random(3), label)
    has_carb = any(i in CARBS for i in example["ingredients"])
    assert has_carb == (label == "not_keto")
