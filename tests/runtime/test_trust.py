"""Trust under faults: repeated SIGKILLs, a full disk and a read-only output directory.

A run killed many times at random points and restarted ends with exactly the
dataset of an uninterrupted run, and no completed call is paid for twice; a
full or read-only output directory gives one clear error, leaves no
half-written file behind, and the same command resumes once the cause is gone.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI
from spec_edits import edit
from taskc.compiler.paths import write_atomic
from taskc.runtime.generation import load_generated_examples, planned_calls, run_generation
from test_runtime_fixtures import API_KEY, chat_requests, compiled_keto, files_containing, keto_responder, settings_for
from test_runtime_generation import _CHILD, QUIET, _cached_keys, without_request_ids

from taskc.cli.main import main

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_repeated_kills_end_with_the_dataset_of_an_uninterrupted_run(tmp_path: Path) -> None:
    keto = compiled_keto(tmp_path / "keto")
    key_of_seed = {call.job.seed: call.cache_key for call in planned_calls(keto)}
    run_dir = tmp_path / "run"
    chance = random.Random(20261126)
    repeated: set[str] = set()
    with FakeOpenAI(responder=keto_responder, latency=0.05) as server:
        script = _CHILD.format(tests=str(Path(__file__).parents[1]), work=str(tmp_path / "child"), url=server.base_url,
                               key=API_KEY, run=str(run_dir))
        kills = 0
        while kills < 5 and len(_cached_keys(run_dir)) < len(keto.plan) - 2:
            done_before = _cached_keys(run_dir)
            asked_before = len(chat_requests(server))
            child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONUNBUFFERED": "1"})
            target = len(done_before) + chance.randint(1, 4)
            deadline = time.monotonic() + 30
            while len(_cached_keys(run_dir)) < target and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.01)
            time.sleep(chance.random() * 0.05)  # a random point: between two calls or inside one
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
            asked = {key_of_seed[body["seed"]] for body in chat_requests(server)[asked_before:]}
            repeated |= asked & done_before
        done_before = _cached_keys(run_dir)
        asked_before = len(chat_requests(server))
        run_generation(keto, run_dir, settings_for(server), QUIET)
        repeated |= {key_of_seed[body["seed"]] for body in chat_requests(server)[asked_before:]} & done_before
    assert kills >= 3
    assert repeated == set()  # no call that had completed was ever paid for again
    with FakeOpenAI(responder=keto_responder) as clean_server:
        run_generation(keto, tmp_path / "clean", settings_for(clean_server), QUIET)
    assert without_request_ids(load_generated_examples(run_dir)) == without_request_ids(
        load_generated_examples(tmp_path / "clean"))
    assert files_containing(run_dir, API_KEY) == []


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def disk_full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_atomic(target, b"new contents")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.fixture
def tiny_filesystem(tmp_path: Path):
    """A 96 KiB tmpfs: a real full disk. Needs root (as CI has); skipped where mounting is not allowed."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount_point)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_full_disk_gives_a_clear_error_and_the_run_resumes_elsewhere(tiny_filesystem: Path, tmp_path: Path,
                                                                      no_provider, capsys) -> None:
    spec = str(EXAMPLES / "keto.task.yaml")
    assert main(["run", spec, "-o", str(tiny_filesystem / "run"), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert "No space left on device" in err and "run the same command again" in err
    assert "Traceback" not in err
    leftovers = [p for p in tiny_filesystem.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []
    assert main(["run", spec, "-o", str(tmp_path / "run"), "--quiet"]) == 0


def test_a_cache_filling_the_disk_mid_generation_gives_a_clear_error(tiny_filesystem: Path, tmp_path: Path,
                                                                     monkeypatch, capsys) -> None:
    # A cache write that fails mid-generation stops the run with what to do, not a traceback.
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    spec = str(EXAMPLES / "keto.task.yaml")
    with FakeOpenAI(responder=keto_responder) as server:
        status = main(["run", spec, "-o", str(tiny_filesystem / "run"), "--base-url", server.base_url, "-q"])
        err = capsys.readouterr().err
        assert status == 4 and "Traceback" not in err
        assert "disk is full" in err and "run the same command again" in err
        assert main(["run", spec, "-o", str(tmp_path / "run"), "--base-url", server.base_url, "-q"]) == 0


def test_read_only_output_directory_gives_a_clear_error(tiny_filesystem: Path, no_provider, capsys) -> None:
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(tiny_filesystem)], capture_output=True,
                               check=False)
    if remounted.returncode != 0:
        pytest.skip("cannot remount read-only here")
    assert main(["run", str(EXAMPLES / "keto.task.yaml"), "-o", str(tiny_filesystem / "run"), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "Traceback" not in err


def test_run_refuses_data_outside_the_project_unless_allowed(tmp_path: Path, no_provider, capsys) -> None:
    project = tmp_path / "project"
    project.mkdir()
    spec = project / "keto.task.yaml"
    text = (EXAMPLES / "keto.task.yaml").read_text(encoding="utf-8")
    text = edit(text, "path: data/keto_pool.jsonl", f"path: {EXAMPLES / 'data' / 'keto_pool.jsonl'}")
    spec.write_text(edit(text, "gold: data/keto_gold.jsonl", f"gold: {EXAMPLES / 'data' / 'keto_gold.jsonl'}"))
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--quiet"]) == 1
    assert "error[E034]" in capsys.readouterr().err
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--quiet", "--allow-outside-paths"]) == 0
