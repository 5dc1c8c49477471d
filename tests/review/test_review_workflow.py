"""docs/taskc-review.yml's shell steps, run as GitHub runs them (bash, the step's env) in a scratch repository.

A base branch holds three task files; the pull request changes one, deletes one and breaks nothing else.
The check step's output must be GitHub workflow commands, and the comment must name the deleted file and
carry the diff of the changed one. The `gh` calls of the last step need GitHub and are not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "taskc-review.yml"
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None,
                                reason="needs bash and git")


def _steps() -> dict[str, dict[str, object]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return {step["name"]: step for step in workflow["jobs"]["review"]["steps"] if "name" in step}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env=os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                                     "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})


def _run_step(name: str, repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = str(_steps()[name]["run"])
    assert "${{" not in script, "expressions belong in the step's env, not in its script"
    bin_dir = str(Path(sys.executable).parent)  # where this environment's `taskc` lies
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=repo, capture_output=True, text=True,
                          timeout=300, env=os.environ | {"PATH": bin_dir + os.pathsep + os.environ["PATH"]} | env)


@pytest.fixture
def pull_request(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "branch", "base")
    (repo / "custom_templates" / "reviews.task.yaml").unlink()
    keto = repo / "keto.task.yaml"
    keto.write_text(keto.read_text(encoding="utf-8").replace("  - id: sweet_fruit\n",
                                                             "  - id: sweet_fruit_renamed\n", 1), encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the pull request")
    return repo


def test_the_workflow_runs_only_for_task_files_and_caches_pip() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    paths = workflow[True]["pull_request"]["paths"]  # YAML 1.1 reads the key `on` as true
    assert "**.task.yaml" in paths and "**.task.yml" in paths
    setup = next(s for s in workflow["jobs"]["review"]["steps"] if str(s.get("uses", "")).startswith(
        "actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    assert workflow["env"]["TASKC_PIP_SPEC"].startswith("taskc-compiler")


def test_check_step_prints_annotations(pull_request: Path) -> None:
    keto = pull_request / "keto.task.yaml"
    keto.write_text(keto.read_text(encoding="utf-8").replace("classes:", "clases:", 1), encoding="utf-8")
    _git(pull_request, "commit", "-q", "-am", "broken")
    done = _run_step("taskc check", pull_request, {})
    assert done.returncode != 0  # the step fails (xargs says 123 when taskc exited 1)
    annotations = [line for line in done.stdout.splitlines() if line.startswith("::")]
    assert annotations and all(re.match(r"::(error|warning) file=keto\.task\.yaml,line=\d+,col=\d+", line)
                               for line in annotations)


def test_comment_names_deleted_task_files_and_carries_the_diff(pull_request: Path, tmp_path: Path) -> None:
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    env = {"BASE": "base", "MARKER": "<!-- taskc-review -->", "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_OUTPUT": str(output)}
    done = _run_step("taskc diff against the base branch", pull_request, env)
    assert done.returncode == 0, done.stderr
    comment = (pull_request / "comment.md").read_text(encoding="utf-8")
    assert comment.startswith("<!-- taskc-review -->\n## taskc review")
    assert "- deleted task file `custom_templates/reviews.task.yaml`" in comment
    assert "sweet_fruit_renamed" in comment
    assert "new task file" not in comment
    assert output.read_text(encoding="utf-8") == "changed=1\n"
