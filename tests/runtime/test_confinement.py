"""Untrusted task files in CI (issue #12): confined inputs, safe writes, one run per run directory,
JSONL read as written, and a report that shows data as text.

`git ls-files '*.task.yaml' | xargs taskc check` lists symbolic links too, so a task file that is a
link to /proc/self/environ, a secret, /dev/zero or a FIFO must be refused without a byte of it in the
log and without hanging; writes must not follow links planted in the project or the run directory.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from spec_edits import edit
from taskc.compiler.driver import compile_task
from taskc.compiler.loader import MAX_FILE_BYTES
from taskc.compiler.paths import SymlinkRefused, write_atomic
from taskc.runtime.cache import CacheError, ResponseCache
from taskc.runtime.datafiles import MAX_LINE_BYTES, DataFileError, read_gold, read_pool
from taskc.runtime.run_lock import run_dir_lock
from test_run_cli import GOLD, _project
from test_runtime_fixtures import write_jsonl

from taskc.cli.main import main

SECRET = "CI_DEPLOY_TOKEN=s3cr3t-0042-do-not-print"
UNFORMATTED = "taskc: 1\ntask:\n    name: reviews\n"  # fmt would re-indent it
CHILD_TIMEOUT = 60  # seconds: a hang on a device or a FIFO fails the test instead of the suite


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The reviews task of test_run_cli in tmp_path/project, with a secret file next to the project."""
    (tmp_path / "secret.env").write_text(SECRET + "\n", encoding="utf-8")
    return _project(tmp_path / "project").parent


def _taskc(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """taskc in a child process with a timeout, for inputs that would block a reader."""
    return subprocess.run([sys.executable, "-m", "taskc", *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT, env={**os.environ, "PYTHONUTF8": "1"})


# -- the task file itself ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["check"], ["compile", "-o", "OUT"], ["fmt"], ["fmt", "--diff"],
                                     ["fmt", "--check"], ["diff", "reviews.task.yaml"], ["run", "-o", "OUT"]])
def test_a_task_file_linked_to_a_secret_outside_the_project_is_refused_and_never_shown(
        project: Path, command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        no_provider: None) -> None:
    (project / "leak.task.yaml").symlink_to(project.parent / "secret.env")
    monkeypatch.chdir(project)
    arguments = [part.replace("OUT", str(project.parent / "out")) for part in command]
    status = main([arguments[0], *arguments[1:], "leak.task.yaml"])
    out, err = capsys.readouterr()
    assert status != 0
    assert SECRET not in out + err and "s3cr3t" not in out + err
    assert "leak.task.yaml:1:1: error[E001]: cannot read task file: it is a symbolic link to a file outside " \
           "its directory; refused" in err
    assert (project / "leak.task.yaml").is_symlink()  # fmt did not replace the link with the secret's content
    assert (project.parent / "secret.env").read_text(encoding="utf-8") == SECRET + "\n"


def test_a_link_to_proc_self_environ_is_refused_without_quoting_it_and_one_inside_is_read(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "alias.task.yaml").symlink_to("reviews.task.yaml")  # a link to a task file inside the project
    assert main(["check", "-q", str(project / "alias.task.yaml")]) == 0, capsys.readouterr().err
    if not Path("/proc/self/environ").exists():
        pytest.skip("no /proc here")
    (project / "environ.task.yaml").symlink_to("/proc/self/environ")
    for arguments in (["check"], ["fmt", "--diff"]):
        assert main([*arguments, str(project / "environ.task.yaml")]) == 1
        out, err = capsys.readouterr()
        assert "cannot read task file" in err and "^" not in err and os.environ.get("PATH", "?") not in out + err
    assert main(["check", "/proc/self/environ"]) == 1  # named directly, not through a link
    assert "it resolves into /proc, which taskc never reads" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "link_to_fifo"])
def test_devices_and_fifos_are_refused_without_hanging(project: Path, kind: str) -> None:
    task = project / "odd.task.yaml"
    if kind == "dev_zero":
        task.symlink_to("/dev/zero")
        expected = "it is a symbolic link to a file outside its directory; refused"
    else:
        fifo = project / ("odd.task.yaml" if kind == "fifo" else "pipe.task.yaml")
        os.mkfifo(fifo)
        if kind == "link_to_fifo":
            task.symlink_to(fifo.name)
        expected = "it is a FIFO (named pipe), not a regular file; refused"
    for arguments in (["check"], ["fmt", "--diff"], ["compile", "-o", str(project / "out")]):
        done = _taskc(*arguments, task.name, cwd=project)
        assert done.returncode == 1, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr


def test_a_task_file_over_the_size_cap_is_refused_before_it_is_read(project: Path) -> None:
    huge = project / "huge.task.yaml"
    with open(huge, "wb") as handle:
        handle.truncate(64 << 30)  # 64 GiB, sparse: reading it first would exhaust memory or time
    done = _taskc("check", huge.name, cwd=project)
    assert done.returncode == 1
    assert (f"huge.task.yaml:1:1: error[E002]: task file is {64 << 30:,} bytes; the limit is 2 MiB "
            f"({MAX_FILE_BYTES:,} bytes)") in done.stderr


def test_files_named_by_the_task_must_be_regular_files_even_when_outside_paths_are_allowed(project: Path) -> None:
    spec = project / "reviews.task.yaml"
    text = spec.read_text(encoding="utf-8")
    os.mkfifo(project / "data" / "pipe.jsonl")
    for path in ("/proc/self/environ", "/dev/zero", "data/pipe.jsonl"):
        spec.write_text(edit(text, "path: data/pool.jsonl", f"path: {path}"), encoding="utf-8")
        result = compile_task(spec, allow_outside=True)
        messages = [d.message for d in result.diagnostics if d.code == "E034"]
        assert messages and ("never reads" in messages[0] or "not a regular file" in messages[0]), path


# -- writing -----------------------------------------------------------------------------------------

def test_planted_links_at_temporary_names_do_not_redirect_fmt(project: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    task = project / "ugly.task.yaml"
    task.write_text(UNFORMATTED, encoding="utf-8")
    task.chmod(0o754)
    victim = tmp_path / "victim"
    for pid in range(max(1, os.getpid() - 50), os.getpid() + 50):  # the old name: .NAME.PID.tmp
        (project / f".ugly.task.yaml.{pid}.tmp").symlink_to(victim / str(pid))
    victim.mkdir()
    assert main(["fmt", str(task)]) == 0, capsys.readouterr().err
    assert list(victim.iterdir()) == []
    status = task.lstat()
    assert stat.S_ISREG(status.st_mode) and stat.S_IMODE(status.st_mode) == 0o754
    assert task.read_text(encoding="utf-8") == "taskc: 1\ntask:\n  name: reviews\n"


def test_fmt_does_not_replace_a_linked_task_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = project / "real.task.yaml"
    real.write_text(UNFORMATTED, encoding="utf-8")
    link = project / "link.task.yaml"
    link.symlink_to(real.name)
    assert main(["fmt", str(link)]) == 1
    err = capsys.readouterr().err
    assert f"taskc fmt: error: {link} is a symbolic link; not rewritten: run taskc fmt on the file it points to" in err
    assert "1 task file: 0 reformatted, 0 already formatted, 1 with errors" in err
    assert link.is_symlink() and real.read_text(encoding="utf-8") == UNFORMATTED
    assert main(["fmt", "--check", str(link)]) == 1  # reading through the link is fine
    assert main(["fmt", str(real)]) == 0 and link.is_symlink()


def test_write_atomic_refuses_a_target_that_is_a_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("theirs")
    link = tmp_path / "out" / "metrics.json"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    with pytest.raises(SymlinkRefused, match="symbolic link"):
        write_atomic(link, b"ours")
    assert link.is_symlink() and elsewhere.read_text() == "theirs"
    assert [p.name for p in link.parent.iterdir()] == ["metrics.json"]  # no temporary left


def test_a_run_dir_that_is_or_holds_a_link_is_refused(project: Path, tmp_path: Path, no_provider: None,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(project / "reviews.task.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere)
    assert main(["run", spec, "-o", str(tmp_path / "linked"), "-q"]) == 2
    assert f"taskc: error: RUN_DIR is a symbolic link: {tmp_path / 'linked'}; taskc writes only into a real " \
           "directory" in capsys.readouterr().err
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model").symlink_to(elsewhere)
    assert main(["run", spec, "-o", str(run_dir), "-q"]) == 2
    assert f"taskc: error: RUN_DIR contains a symbolic link: {run_dir / 'model'}" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_the_default_run_dir_under_a_linked_runs_directory_is_refused(project: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      no_provider: None,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "runs").symlink_to(elsewhere)  # committed to the repository by whoever wrote the task
    monkeypatch.chdir(project)
    assert main(["run", "reviews.task.yaml", "-q"]) == 2
    assert "taskc: error: runs (in RUN_DIR) is a symbolic link: runs/reviews" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


# -- one run per run directory -----------------------------------------------------------------------

_HOLD = """
import sys
from pathlib import Path
from taskc.runtime.run_lock import run_dir_lock
with run_dir_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_on_one_run_dir_exits_2_naming_the_holder(project: Path, tmp_path: Path, no_provider: None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec, run_dir = str(project / "reviews.task.yaml"), tmp_path / "run"
    with run_dir_lock(run_dir):
        assert main(["run", spec, "-o", str(run_dir), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"taskc: error: RUN_DIR {run_dir} is in use by another taskc run (process {os.getpid()}, started " in err
    assert "wait for it to finish, or choose another directory with -o" in err
    assert not (run_dir / "metrics.json").exists()
    assert main(["run", spec, "-o", str(run_dir), "-q"]) == 0  # released: the file left behind does not block


def test_a_lock_held_by_another_process_blocks_until_it_is_killed(project: Path, tmp_path: Path,
                                                                  no_provider: None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec, run_dir = str(project / "reviews.task.yaml"), tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert main(["run", spec, "-o", str(run_dir), "-q"]) == 2
        assert f"(process {holder.pid}, started " in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((run_dir / ".lock").read_text())["pid"] == holder.pid  # stale: a killed run's file
    assert main(["run", spec, "-o", str(run_dir), "-q"]) == 0


# -- a read-only run directory -----------------------------------------------------------------------

@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory taskc cannot write: mode 0555 for a normal user; root ignores modes, so for root a
    tmpfs remounted read-only (skipped where mounting is not allowed)."""
    if os.geteuid() != 0:
        directory = tmp_path / "read_only"
        directory.mkdir()
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    mount_point = tmp_path / "read_only"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], capture_output=True,
                          check=False).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_read_only_run_dir_is_reported_as_read_only_not_as_a_damaged_cache(read_only_dir: Path,
                                                                             project: Path, no_provider: None,
                                                                             capsys: pytest.CaptureFixture[str]
                                                                             ) -> None:
    with pytest.raises(CacheError) as raised:
        ResponseCache(read_only_dir / "cache.sqlite")
    assert "read-only" in str(raised.value) and "damaged" not in str(raised.value)
    assert main(["run", str(project / "reviews.task.yaml"), "-o", str(read_only_dir), "-q"]) == 4
    err = capsys.readouterr().err
    assert "the run directory is read-only: make it writable or choose another directory with -o" in err


# -- reading JSONL -----------------------------------------------------------------------------------

def _reviews(project: Path):  # the compiled reviews task, for read_pool / read_gold
    result = compile_task(project / "reviews.task.yaml")
    assert result.task is not None
    return result.task


def test_raw_line_separators_inside_json_strings_are_data(project: Path) -> None:
    pool = project / "data" / "pool.jsonl"
    rows = [{"text": "good food\u2028and more"}, {"text": "next\u0085line"}, {"text": "\u2029tasty"}]
    pool.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "[1]\n", encoding="utf-8")
    with pytest.raises(DataFileError) as raised:
        read_pool(pool, _reviews(project), display="pool.jsonl")
    assert str(raised.value).startswith("pool.jsonl:4: expected a JSON object")  # line numbers count "\n" only
    pool.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    records = read_pool(pool, _reviews(project)).records
    assert [r.values["text"] for r in records] == [r["text"] for r in rows]
    assert [r.line for r in records] == [1, 2, 3]


def test_hostile_data_lines_are_located_problems_not_crashes(project: Path) -> None:
    gold = project / "data" / "gold.jsonl"
    good = [json.dumps({"text": t, "label": lab}) for t, lab in GOLD[:2]]
    lines = [good[0],
             json.dumps({"text": "x" * (MAX_LINE_BYTES + 10), "label": "pos"}),  # 2: over the line cap
             '{"text": "bad \\ud800 half", "label": "pos"}',  # 3: a lone surrogate escape
             '{"text": "n", "label": "pos", "n": ' + "9" * 5000 + "}",  # 4: a 5,000-digit number
             "[" * 100_000 + "]" * 100_000,  # 5: deeper than any parser recursion
             '{"text": "ok\\ud83d\\ude00", "label": "neg"}',  # 6: a valid surrogate pair is fine
             good[1]]
    gold.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError) as raised:
        read_gold(gold, _reviews(project), display="gold.jsonl")
    assert str(raised.value).splitlines() == [
        "gold.jsonl:2: line is longer than 1,048,576 bytes (1 MiB), the limit for one JSON object",
        "gold.jsonl:3: invalid JSON: a string holds a lone surrogate escape (such as \\ud800), which is not text",
        f"gold.jsonl:4: invalid JSON: a number with more than {sys.get_int_max_str_digits()} digits"
        if hasattr(sys, "get_int_max_str_digits") else "gold.jsonl:4: invalid JSON: a number with more than 4300 "
                                                         "digits",
        "gold.jsonl:5: invalid JSON: nested too deeply"]


def test_hostile_data_lines_exit_1_from_run(project: Path, tmp_path: Path, no_provider: None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    gold = project / "data" / "gold.jsonl"
    gold.write_text(gold.read_text(encoding="utf-8") + "[" * 100_000 + "\n", encoding="utf-8")
    assert main(["run", str(project / "reviews.task.yaml"), "-o", str(tmp_path / "run"), "-q"]) == 1
    assert f"taskc: error: data/gold.jsonl:{len(GOLD) + 1}: invalid JSON: nested too deeply" in \
        capsys.readouterr().err.replace(str(project) + os.sep, "")


# -- the report --------------------------------------------------------------------------------------

def test_report_md_shows_html_from_the_data_as_text(project: Path, tmp_path: Path, no_provider: None) -> None:
    rows = [{"text": t, "label": lab} for t, lab in GOLD]
    rows.append({"text": "great <script>alert(1)</script> & <img src=x onerror=alert(2)>", "label": "neg"})
    write_jsonl(project / "data" / "gold.jsonl", rows)
    assert main(["run", str(project / "reviews.task.yaml"), "-o", str(tmp_path / "run"), "-q"]) in (0, 3)
    markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "great &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in markdown
    assert "<script" not in markdown and "<img" not in markdown
    assert "`accuracy >= 0.8`" in markdown  # code spans stay as written


def test_compile_refuses_an_output_directory_holding_a_planted_link(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.md").write_text("not taskc's")
    out = tmp_path / "out"
    out.mkdir()
    (out / "prompts").symlink_to(elsewhere)
    spec = Path(__file__).resolve().parents[1] / "broken" / "W106_values_ignored.task.yaml"
    assert main(["compile", str(spec), "-o", str(out)]) == 4
    assert "symbolic link" in capsys.readouterr().err
    assert (elsewhere / "keep.md").read_text() == "not taskc's" and sorted(p.name for p in elsewhere.iterdir()) == [
        "keep.md"]
