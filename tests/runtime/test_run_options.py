"""`taskc run`'s options, grouped by concern (runtime/options.py): the CLI builds them once from its flags,
and the provider's settings and generation's options are built from the groups in one place."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from taskc.runtime.options import (
    BudgetOptions,
    EndpointOptions,
    FinetuneOptions,
    PathOptions,
    PresentationOptions,
    RunOptions,
    generation_options,
    provider_settings,
)

from taskc.cli.cmd_run import _endpoint_options, _run_options
from taskc.cli.main import build_parser

EVERY_FLAG = ["run", "x.task.yaml", "-o", "out", "--gold", "g.jsonl", "--answers", "a.jsonl",
              "--allow-outside-paths", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--concurrency", "3",
              "--rpm", "5", "--tpm", "7", "--max-cost", "1.5", "--max-calls", "11", "--deadline", "13",
              "--request-timeout", "19", "--finetune", "--finetune-max-wait", "17", "--batch", "--quiet",
              "--format", "json"]


def test_every_flag_of_run_lands_in_its_group(tmp_path: Path) -> None:
    args = build_parser().parse_args(EVERY_FLAG)
    options = _run_options(args, tmp_path / "run", _endpoint_options(args))
    assert options == RunOptions(
        paths=PathOptions(tmp_path / "run", gold=Path("g.jsonl"), answers=Path("a.jsonl")),
        endpoint=EndpointOptions("http://127.0.0.1:9/v1", "m", 3, 5, 7, 13.0, batch=True, request_timeout=19.0),
        budget=BudgetOptions(max_cost=1.5, max_calls=11),
        presentation=PresentationOptions(quiet=True, json_progress=True),
        finetune=FinetuneOptions(enabled=True, max_wait=17.0))
    # a new flag of `taskc run` must go into a group: every destination but the command's own is accounted for
    grouped = {f.name for group in (PathOptions, EndpointOptions, BudgetOptions, PresentationOptions,
                                    FinetuneOptions) for f in dataclasses.fields(group)}
    renamed = {"output": "run_dir", "format": "json_progress",
               "finetune": "enabled", "finetune_max_wait": "max_wait"}
    # --allow-outside-paths is the compiler's: lowering resolves the data paths once, the runtime reads them
    given = set(vars(args)) - {"spec", "command", "handler", "main_verbose", "verbose", "root_parser",
                               "allow_outside_paths"}
    assert {renamed.get(dest, dest) for dest in given} <= grouped


def test_request_timeout_bounds_each_request_and_lengthens_the_calls_deadline_to_match() -> None:
    default = provider_settings(EndpointOptions("http://127.0.0.1:9/v1"))
    assert default is not None and default.timeout == 60.0 and default.call_deadline == 600.0
    slow = provider_settings(EndpointOptions("http://127.0.0.1:9/v1", request_timeout=300.0))
    # a call's deadline (retries included) leaves every attempt its whole request time
    assert slow is not None and slow.timeout == 300.0 and slow.call_deadline == 300.0 * (slow.max_retries + 1)
    quick = provider_settings(EndpointOptions("http://127.0.0.1:9/v1", request_timeout=2.0))
    assert quick is not None and quick.timeout == 2.0 and quick.call_deadline == 600.0


def test_the_options_are_frozen() -> None:
    options = RunOptions(PathOptions(Path("run")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.budget = BudgetOptions(max_calls=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.endpoint.model = "m"


def test_generation_options_come_from_the_budget_endpoint_and_presentation_groups() -> None:
    options = RunOptions(PathOptions(Path("run")), EndpointOptions(batch=True), BudgetOptions(2.5, 9),
                         PresentationOptions(quiet=False, json_progress=True))
    built = generation_options(options)
    assert (built.max_cost, built.max_calls, built.batch, built.quiet, built.json_progress) == (2.5, 9, True, False,
                                                                                               True)


def test_provider_settings_come_from_the_endpoint_group(no_provider: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not EndpointOptions().configured and provider_settings(EndpointOptions()) is None
    endpoint = EndpointOptions(base_url="http://127.0.0.1:9/v1", model="m", concurrency=3, rpm=5, tpm=7,
                               deadline=600.0)
    settings = provider_settings(endpoint)
    assert settings is not None
    assert (settings.base_url, settings.model, settings.concurrency, settings.rpm, settings.tpm) == (
        "http://127.0.0.1:9/v1", "m", 3, 5, 7)
    assert settings.run_deadline is not None and settings.run_deadline.seconds == 600.0
    defaults = provider_settings(EndpointOptions(base_url="http://127.0.0.1:9/v1"))
    assert defaults is not None and (defaults.concurrency, defaults.rpm, defaults.run_deadline) == (8, None, None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert EndpointOptions().configured


@pytest.mark.parametrize("flag", ["--max-cost", "--deadline", "--finetune-max-wait"])
@pytest.mark.parametrize("value, why", [
    ("nan", "expected a finite number, got 'nan'"),
    ("inf", "expected a finite number, got 'inf'"),
    ("-inf", "expected a finite number, got '-inf'"),
    ("0", "must be more than 0, got 0.0"),
    ("ten", "expected a number, got 'ten'"),
])
def test_a_limit_that_is_no_number_of_seconds_or_dollars_is_a_usage_error(
        flag: str, value: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    """nan would pass every comparison (no limit at all) and inf is no limit: both are refused up front."""
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["run", "x.task.yaml", f"{flag}={value}"])
    assert stopped.value.code == 2
    assert f"argument {flag}: {why}" in capsys.readouterr().err
