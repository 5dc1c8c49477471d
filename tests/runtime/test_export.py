"""`taskc export RUN_DIR -o DIR`: a run's training data in the layouts other trainers take.

Read as the reference of the command. After `taskc run`, RUN_DIR/training_set.jsonl holds what every
student trained on; the export writes it as

- messages.jsonl: chat fine-tuning lines, exactly as taskc's own fine-tuning writes them (they pass its
  validator; the user message is the input as JSON, fields in declaration order);
- classification.jsonl + labels.json: text (what the local model reads), label, weight, source;
- README.md: a dataset card whose counts are the files' counts, naming the label sources, the LLM that ran
  (or that none did) and what it cannot know (the pool's licence).

Every line of the export is the same example in every file, two exports are byte-identical, and a run made
for another version of the task, a missing or damaged run and a directory that is not an earlier export are
refused with a one-line message and taskc's exit statuses (1 data, 2 usage, 4 cannot write).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from spec_edits import edit
from taskc.compiler.driver import CompiledTask, compile_task
from taskc.runtime import training_set
from taskc.runtime.export import CARD_MARKER, TRAINING_SET_FILE, parse_formats, size_category, source_meaning
from taskc.runtime.features import item_text, spec_hash
from taskc.runtime.finetune import validate_training_file
from test_model_worth_launching import GOLD, MENU_SPEC, _pool
from test_runtime_fixtures import write_jsonl

from taskc.cli.main import main

EXPORT_FILES = ["README.md", "classification.jsonl", "labels.json", "messages.jsonl"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The menu project (two text fields, so field views too) and one offline run of it, made once."""
    root = tmp_path_factory.mktemp("trained")
    (root / "menu.task.yaml").write_text(MENU_SPEC, encoding="utf-8")
    write_jsonl(root / "data" / "pool.jsonl", _pool())
    write_jsonl(root / "data" / "gold.jsonl", GOLD)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            patch.delenv(name, raising=False)
        assert main(["run", str(root / "menu.task.yaml"), "-o", str(root / "run"), "-q"]) == 0
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained project that a test may damage (the run's model/ names the task file by a
    relative path, so the copy points at its own task file)."""
    target = tmp_path / "project"
    shutil.copytree(trained, target)
    return target


def _compiled(project: Path) -> CompiledTask:
    result = compile_task(str(project / "menu.task.yaml"))
    assert result.compiled is not None
    return result.compiled


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _export(project: Path, *options: str, out: str = "export") -> int:
    return main(["export", str(project / "run"), "-o", str(project / out), *options])


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


# -- what it writes --------------------------------------------------------------------------------------

def test_export_writes_chat_and_classification_files_labels_and_a_card(project: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    assert _export(project) == 0
    assert sorted(p.name for p in (project / "export").iterdir()) == EXPORT_FILES
    rows = _jsonl(project / "run" / TRAINING_SET_FILE)
    err = capsys.readouterr().err
    for name in ("messages.jsonl", "classification.jsonl"):
        assert len(_jsonl(project / "export" / name)) == len(rows)
        assert f"taskc: wrote {project / 'export' / name} ({len(rows):,} " in err
    assert err.count("taskc: wrote ") == 4  # one line per file, README.md and labels.json included

    assert _export(project, "-q", out="quiet") == 0
    assert capsys.readouterr().err == ""


def test_every_chat_line_passes_taskcs_own_fine_tuning_validator_and_says_the_input_back(project: Path) -> None:
    assert _export(project, "-q") == 0
    compiled = _compiled(project)
    path = project / "export" / "messages.jsonl"
    assert validate_training_file(path) == []
    rows = _jsonl(project / "run" / TRAINING_SET_FILE)
    for line, row in zip(_jsonl(path), rows, strict=True):
        system, user, assistant = line["messages"]
        assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]
        assert system["content"] == compiled.finetune.system_message
        assert json.loads(user["content"]) == row["input"]
        assert list(json.loads(user["content"])) == [f for f in compiled.ir.field_names if f in row["input"]]
        assert assistant["content"] == row["label"]
        # the same messages taskc's own train.jsonl is made of (CompiledTask.training_messages)
        assert line["messages"] == compiled.training_messages(row["input"], row["label"])


def test_classification_lines_carry_the_task_classes_and_the_text_the_local_model_reads(project: Path) -> None:
    assert _export(project, "-q") == 0
    task = _compiled(project).ir
    rows = _jsonl(project / "run" / TRAINING_SET_FILE)
    lines = _jsonl(project / "export" / "classification.jsonl")
    for line, row in zip(lines, rows, strict=True):
        assert list(line) == ["text", "label", "weight", "source"]
        assert line["label"] in task.class_names
        assert line["text"] == item_text(task, row["input"])
        assert (line["weight"], line["source"]) == (row["weight"], row["source"])
    assert lines[0]["text"] == " | ".join([rows[0]["input"]["dish"], *rows[0]["input"]["ingredients"]])
    labels = (project / "export" / "labels.json").read_text(encoding="utf-8")
    assert json.loads(labels) == {"keto": 0, "not_keto": 1}
    assert labels.index('"keto"') < labels.index('"not_keto"')  # the task's class order, not sorted


def test_no_weights_leaves_the_weight_column_out_and_the_card_says_so(project: Path) -> None:
    assert _export(project, "-q", "--no-weights") == 0
    assert all(list(line) == ["text", "label", "source"]
               for line in _jsonl(project / "export" / "classification.jsonl"))
    assert "`--no-weights`" in (project / "export" / "README.md").read_text(encoding="utf-8")


def test_format_chooses_the_files_and_a_later_export_removes_the_ones_not_asked_for(project: Path) -> None:
    assert _export(project, "-q", "--format", "messages") == 0
    assert sorted(p.name for p in (project / "export").iterdir()) == ["README.md", "messages.jsonl"]
    card = (project / "export" / "README.md").read_text(encoding="utf-8")
    assert [c["config_name"] for c in _front_matter(card)["configs"]] == ["messages"]
    assert "classification.jsonl`" not in card.split("## Files")[1]
    # into the same directory (an earlier export, so no --force): the chat file would contradict the card
    assert _export(project, "-q", "--format", "classification") == 0
    assert sorted(p.name for p in (project / "export").iterdir()) == ["README.md", "classification.jsonl",
                                                                      "labels.json"]


def test_format_values_are_checked_with_did_you_mean() -> None:
    assert parse_formats("classification, messages") == ("messages", "classification")  # FORMATS order
    assert parse_formats("messages") == ("messages",)
    with pytest.raises(ValueError, match="unknown format 'mesages'; did you mean 'messages'"):
        parse_formats("mesages")
    with pytest.raises(ValueError, match="no format given"):
        parse_formats(",")


def test_an_unknown_format_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        _export(project, "--format", "csv")
    assert exit_.value.code == 2
    assert "unknown format 'csv'; choose from messages, classification" in capsys.readouterr().err


# -- the dataset card ------------------------------------------------------------------------------------

def test_the_card_counts_are_the_files_counts(project: Path) -> None:
    assert _export(project, "-q") == 0
    card = (project / "export" / "README.md").read_text(encoding="utf-8")
    lines = _jsonl(project / "export" / "classification.jsonl")
    meta = _front_matter(card)
    assert meta["task_categories"] == ["text-classification"]
    assert meta["size_categories"] == [size_category(len(lines))]
    assert "license" not in meta  # unknown: stated in the body instead
    assert [c["data_files"][0]["path"] for c in meta["configs"]] == ["classification.jsonl", "messages.jsonl"]
    assert card.splitlines()[len(card.split("---\n")[1].splitlines()) + 2] == CARD_MARKER

    task = _compiled(project).ir
    assert f"| examples | {len(lines):,} |" in card
    assert f"| spec hash | `{spec_hash(task)}` |" in card
    assert "| taskc version | 0.1.0 (run and export) |" in card
    assert "Is a dish keto?" in card  # the task's description
    by_class = Counter(line["label"] for line in lines)
    for name in task.class_names:
        assert f"| `{name}` | {by_class[name]:,} | {by_class[name] / len(lines):.1%} |" in card
    by_source = Counter(line["source"] for line in lines)
    assert {"label_model", "label_model, dish only", "label_model, ingredients only"} <= set(by_source)
    for source, count in by_source.items():
        assert f"| `{source}` | {count:,} | {count / len(lines):.1%} |" in card
        assert source_meaning(source, task) in card


def test_the_card_says_no_llm_ran_and_what_it_cannot_know_about_the_licence(project: Path) -> None:
    assert _export(project, "-q") == 0
    card = (project / "export" / "README.md").read_text(encoding="utf-8")
    assert "No LLM ran: every label comes from the expert's rules" in card
    assert "`taskc run` generates with `gpt-4o-mini`" in card
    assert "pool file `data/pool.jsonl`" in card and "cannot know that file's licence" in card
    assert "No example here was written or labelled by an LLM." in card
    assert str(project) not in card  # no absolute paths


def test_every_label_source_has_a_meaning_and_field_views_name_their_field(project: Path) -> None:
    task = _compiled(project).ir
    assert "Dawid-Skene" in source_meaning("label_model", task)
    assert f"at most {training_set.UNCOVERED_WEIGHT:g}" in source_meaning("rules' silence", task)
    view = source_meaning("rules' silence, dish only", task)
    assert "field view of a `rules' silence` example" in view and "only `dish` filled" in view
    assert f"× {training_set.FIELD_VIEW_WEIGHT:g}" in view
    assert source_meaning("made up", task) == "a label source this taskc version does not describe"


@pytest.mark.parametrize(("count", "bucket"), [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"),
                                              (8_140, "1K<n<10K"), (250_000, "100K<n<1M")])
def test_size_categories_are_hugging_face_buckets(count: int, bucket: str) -> None:
    assert size_category(count) == bucket


def test_with_an_llm_the_card_names_the_model_and_the_llm_sources(tmp_path: Path, no_provider: None) -> None:
    from fake_openai import FakeOpenAI
    from test_loop_llm import _responder
    from test_run_cli import _project

    spec = _project(tmp_path / "project")
    spec.write_text(edit(spec.read_text(), "  model: gpt-4o-mini\n", "  model: gpt-4o-mini\n  per_rationale: 2\n"
                                                               "  per_call: 2\n"))
    with FakeOpenAI(responder=_responder) as server:
        assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "-q"]) == 0
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "export"), "-q"]) == 0
    lines = _jsonl(tmp_path / "export" / "classification.jsonl")
    sources = Counter(line["source"] for line in lines)
    assert sources["generated"] > 0 and sources["llm"] == 2
    card = (tmp_path / "export" / "README.md").read_text(encoding="utf-8")
    assert "No LLM ran" not in card
    generated = sources["generated"]
    assert f"- generation: {generated:,} example{'s' if generated != 1 else ''} accepted" in card
    assert "written by `gpt-4o-mini`" in card
    assert "- pool labeling: the LLM labelled 2 of 2 pool inputs" in card
    assert "- also ran, without making training data: prompted_baseline" in card
    assert "under Generation models (`gpt-4o-mini`) and are subject to the terms of use" in card
    assert validate_training_file(tmp_path / "export" / "messages.jsonl") == []


# -- determinism -------------------------------------------------------------------------------------------

def test_two_exports_are_byte_identical_also_in_another_process(project: Path) -> None:
    assert _export(project, "-q", out="first") == 0
    assert _export(project, "-q", out="second") == 0
    assert _export(project, "-q", out="first") == 0  # again into the first: an earlier export is rewritten
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    subprocess.run([sys.executable, "-m", "taskc", "export", str(project / "run"), "-o", str(project / "third"),
                    "-q"], check=True, env=env)
    for name in EXPORT_FILES:
        first = (project / "first" / name).read_bytes()
        assert first == (project / "second" / name).read_bytes() == (project / "third" / name).read_bytes(), name


# -- refusals: one line each, taskc's exit statuses ---------------------------------------------------------

def test_a_run_trained_for_another_version_of_the_task_is_refused(project: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    before = spec_hash(_compiled(project).ir)
    spec = project / "menu.task.yaml"
    spec.write_text(edit(spec.read_text(), "meat: [beef, chicken, pork]", "meat: [beef, chicken, pork, lamb]"))
    assert _export(project) == 1
    err = capsys.readouterr().err
    assert "the run was trained for another version of the task" in err and before[:12] in err
    assert "Run `taskc run` on this task file" in err
    assert not (project / "export").exists()


@pytest.mark.parametrize(("damage", "status", "message"), [
    ("remove the run", 2, "{run}: not a directory (RUN_DIR is what `taskc run` wrote"),
    ("remove training_set.jsonl", 1,
     "{run}/training_set.jsonl: not found: this run has no training set to export; run `taskc run SPEC` first "
     "with this taskc version (0.1.0)"),
    ("remove model/predictor.json", 1, "{run}/model/predictor.json: not found: no trained predictor here"),
    ("move the task file away", 1, "the task file the run was trained from is gone"),
], ids=lambda value: value if isinstance(value, str) and " " in value and "{" not in value else "")
def test_a_missing_piece_of_the_run_is_named(project: Path, capsys: pytest.CaptureFixture, damage: str,
                                             status: int, message: str) -> None:
    run = project / "run"
    if damage == "remove the run":
        shutil.rmtree(run)
    elif damage == "move the task file away":
        (project / "menu.task.yaml").rename(project / "elsewhere.yaml")
    else:
        (run / damage.split()[1]).unlink()
    assert _export(project) == status
    err = capsys.readouterr().err
    assert f"taskc: error: {message.format(run=run)}" in err
    assert err.count("\n") == 1


def test_with_spec_a_run_whose_task_file_moved_is_exported(project: Path) -> None:
    (project / "menu.task.yaml").rename(project / "moved.task.yaml")
    assert _export(project, "-q", "--spec", str(project / "moved.task.yaml")) == 0


# Broken lines of training_set.jsonl, and the message each one gets (file:line: message).
BROKEN_LINES = [
    ('{"input": {"dish": "x"}, "label": "keto", "source": "llm"', "not JSON: Expecting ',' delimiter at column 58"),
    ('["input", "label"]', "a line must be a JSON object with input, label, source and weight"),
    ('{"input": {"dish": "x"}, "label": "keto"}', "missing source, weight"),
    ('{"input": "x", "label": "keto", "source": "llm", "weight": 1}', "'input' must be an object of the task's fields"),
    ('{"input": {"dishes": "x"}, "label": "keto", "source": "llm", "weight": 1}',
     "'dishes' is not a field of task 'menu'; did you mean 'dish'?"),
    ('{"input": {"dish": "x"}, "label": "ketoo", "source": "llm", "weight": 1}',
     "label 'ketoo' is not a class of task 'menu'; did you mean 'keto'?"),
    ('{"input": {"dish": "x"}, "label": "keto", "source": "", "weight": 1}', "source '' must be a non-empty string"),
    ('{"input": {"dish": "x"}, "label": "keto", "source": "llm", "weight": -1}',
     "weight -1 must be a number 0 or more"),
    ('{"input": {"dish": "x"}, "label": "keto", "source": "llm", "weight": "1"}',
     "weight '1' must be a number 0 or more"),
]


@pytest.mark.parametrize(("line", "message"), BROKEN_LINES, ids=[m.split(":")[0][:30] for _, m in BROKEN_LINES])
def test_a_broken_line_of_the_training_set_is_named_by_file_and_line(project: Path, capsys: pytest.CaptureFixture,
                                                                     line: str, message: str) -> None:
    path = project / "run" / TRAINING_SET_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _export(project) == 1
    assert f"taskc: error: {path}:3: {message}\n" in capsys.readouterr().err
    assert not (project / "export").exists()


def test_every_broken_line_is_reported_not_only_the_first(project: Path, capsys: pytest.CaptureFixture) -> None:
    path = project / "run" / TRAINING_SET_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1], lines[4] = "not json", "{}"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    assert _export(project) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: not JSON" in err and f"{path}:5: missing input, label, source, weight" in err
    assert f"{path}:{len(lines) + 1}: not UTF-8 text" in err


def test_a_non_empty_directory_is_refused_without_force(project: Path, capsys: pytest.CaptureFixture) -> None:
    out = project / "export"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _export(project) == 2
    assert (f"taskc: error: {out}: not empty and not an earlier export (it holds notes.txt); choose an empty or new "
            "directory, or pass --force") in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert _export(project, "-q", "--force") == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPORT_FILES, "notes.txt"])
    assert (out / "notes.txt").read_text() == "mine"


def test_a_readme_taskc_did_not_write_is_not_an_earlier_export(project: Path, capsys: pytest.CaptureFixture) -> None:
    out = project / "export"
    out.mkdir()
    (out / "README.md").write_text("# my project\n")
    assert _export(project) == 2
    assert "not an earlier export (it holds README.md)" in capsys.readouterr().err
    assert (out / "README.md").read_text() == "# my project\n"


def test_an_output_that_is_a_file_or_cannot_be_written_is_refused(project: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    (project / "taken").write_text("a file")
    assert _export(project, out="taken") == 2
    assert f"taskc: error: {project / 'taken'}: is a file, not a directory" in capsys.readouterr().err
    assert _export(project, out="taken/export") == 4  # its parent is a file: nothing can be written there
    err = capsys.readouterr().err
    assert err.startswith(f"taskc: error: cannot write {project / 'taken' / 'export'}: ") and err.count("\n") == 1
    assert "nothing half-written was left behind" in err


def test_a_task_file_with_errors_is_shown_as_diagnostics(project: Path, capsys: pytest.CaptureFixture) -> None:
    spec = project / "menu.task.yaml"
    spec.write_text(edit(spec.read_text(), "class: not_keto", "class: not_ketoo"))
    assert _export(project) == 1
    err = capsys.readouterr().err
    assert "not_ketoo" in err and "error[" in err  # the compiler's diagnostic, with its code
    assert f"taskc: error: {spec}: the task file has errors" in err
