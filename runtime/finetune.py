"""Runtime stage: fine-tune a hosted model on the generated dataset (`--finetune`).

Runs after generation has written `train.jsonl` / `val.jsonl`. The files are
first checked against OpenAI's published rules for chat fine-tuning data (JSON
lines, a `messages` list, known roles and keys, string content, an assistant
answer, at least 10 examples, a per-example token limit), so a bad file fails
here, in one clear message, before anything is uploaded or billed. Then the
files are uploaded, the job is created from `finetune.json` and polled until it
ends. `finetune_job.json` in the run directory is written after every step
(file ids, job id, status, fine-tuned model), so a rerun continues the same job
instead of creating a second one.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import openai

from ..compiler import (
    CHARS_PER_TOKEN,
    OPENAI_FINETUNING_ALTERNATIVES,
    OPENAI_FINETUNING_SUNSET,
    CompiledTask,
    ExitStatus,
    TaskcError,
    counted,
    sha256_hex,
)
from .datasets import TRAIN_FILE, VAL_FILE, write_json
from .progress import ProgressReporter, make_reporter
from .provider import ProviderSettings, scrub, sync_client

FINETUNE_JOB_FILE = "finetune_job.json"
MIN_EXAMPLES = 10
DEFAULT_MAX_TOKENS_PER_EXAMPLE = 65_536  # the training context of current chat models
ALLOWED_ROLES = ("system", "user", "assistant", "tool", "function")
ALLOWED_MESSAGE_KEYS = ("role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id")
_TERMINAL = {"succeeded", "failed", "cancelled"}
DEFAULT_MAX_WAIT = 2 * 3600.0  # seconds `taskc run --finetune` waits for a job; the job goes on after it
_MAX_PROBLEMS = 20
_TOKENS_PER_MESSAGE = 4  # role and separators, as OpenAI's counting recipe adds per message


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """An upper-leaning estimate (CHARS_PER_TOKEN characters a token, rounded up) of an example's tokens,
    without a tokenizer."""
    total = 3
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        for value in message.values():
            if isinstance(value, str):
                total += -(-len(value) // CHARS_PER_TOKEN)
    return total


def validate_training_file(path: Path, *, min_examples: int = MIN_EXAMPLES,
                           max_tokens_per_example: int = DEFAULT_MAX_TOKENS_PER_EXAMPLE) -> list[str]:
    """Problems with a chat fine-tuning file under OpenAI's format rules; an empty list means it is fine."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        # JSON Lines ends a line at "\n" only: str.splitlines would also split at U+2028, U+0085 and the like,
        # which JSON lets a string hold unescaped (an example's text may)
        lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n") if text else []
    except OSError as exc:
        return [f"{path.name}: cannot be read ({exc.strerror or exc})"]
    except UnicodeDecodeError:
        return [f"{path.name}: is not UTF-8 text"]
    problems: list[str] = []
    count = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            problems.append(f"{path.name} line {number}: empty line")
            continue
        count += 1
        for problem in _example_problems(line, max_tokens_per_example):
            problems.append(f"{path.name} line {number}: {problem}")
    if count < min_examples:
        problems.append(f"{path.name}: has {counted(count, 'example')}; fine-tuning needs at least "
                        f"{min_examples}")
    if len(problems) > _MAX_PROBLEMS:
        problems = problems[:_MAX_PROBLEMS] + [f"... and {len(problems) - _MAX_PROBLEMS} more problems"]
    return problems


def _example_problems(line: str, max_tokens: int) -> list[str]:
    try:
        example = json.loads(line)
    except ValueError:
        return ["not valid JSON"]
    if not isinstance(example, dict):
        return ["an example must be a JSON object"]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["missing a non-empty 'messages' list"]
    problems = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"message {index} is not an object")
            continue
        unknown = sorted(set(message) - set(ALLOWED_MESSAGE_KEYS))
        if unknown:
            problems.append(f"message {index} has unrecognised key(s) {', '.join(unknown)}")
        role = message.get("role")
        if role not in ALLOWED_ROLES:
            problems.append(f"message {index} has role {role!r}; expected one of {', '.join(ALLOWED_ROLES)}")
        content = message.get("content")
        if not isinstance(content, str) and not (role == "assistant" and message.get("tool_calls")):
            problems.append(f"message {index} has no text content")
        if "weight" in message and message["weight"] not in (0, 1):
            problems.append(f"message {index} has weight {message['weight']!r}; only 0 or 1 are allowed")
        if role == "system" and index != 0:
            problems.append(f"message {index} is a system message; it may only come first")
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append("has no assistant message to learn from")
    elif roles[-1] != "assistant":
        problems.append("does not end with the assistant's answer")
    tokens = estimate_tokens([m for m in messages if isinstance(m, dict)])
    if tokens > max_tokens:
        problems.append(f"is about {tokens} tokens, over the {max_tokens}-token limit per example")
    return problems


def finetune_wait(max_wait: float | None, settings: ProviderSettings) -> float:
    """How long to poll a job: --finetune-max-wait (default DEFAULT_MAX_WAIT), and never past --deadline."""
    wait = DEFAULT_MAX_WAIT if max_wait is None else max_wait
    if settings.run_deadline is not None:
        wait = min(wait, max(0.0, settings.run_deadline.remaining()))
    return wait


def run_finetune(compiled: CompiledTask, run_dir: Path, settings: ProviderSettings, *,
                 reporter: ProgressReporter | None = None, max_tokens_per_example: int | None = None,
                 timeout: float | None = None) -> dict[str, Any]:
    """Upload the training files, create (or resume) the job, poll it to the end; return finetune_job.json.

    Never raises for bad data or a provider failure: the returned record then has an "error" line
    (and "problems" for a file that breaks the format rules) and no "fine_tuned_model"."""
    run_dir = Path(run_dir)
    reporter = reporter or make_reporter(quiet=False, json_progress=False)
    train_path, val_path = run_dir / TRAIN_FILE, run_dir / VAL_FILE
    limit = max_tokens_per_example or DEFAULT_MAX_TOKENS_PER_EXAMPLE
    problems = validate_training_file(train_path, max_tokens_per_example=limit)
    has_val = val_path.exists() and val_path.stat().st_size > 0
    if has_val:
        problems += validate_training_file(val_path, min_examples=1, max_tokens_per_example=limit)
    if problems:
        message = f"the training data does not meet the fine-tuning format: {problems[0]}"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return {"status": "not_started", "error": message + more, "problems": problems}
    if compiled.finetune.job is None:
        return {"status": "not_started", "error": f"finetune.provider {compiled.finetune.provider} has no hosted job"}
    job_spec = compiled.finetune.job.request()
    fingerprint = sha256_hex(json.dumps({"job": job_spec, "train": sha256_hex(train_path.read_bytes()),
                                         "val": sha256_hex(val_path.read_bytes()) if has_val else None},
                                        sort_keys=True))
    record_path = run_dir / FINETUNE_JOB_FILE
    record = _load_record(record_path, fingerprint)
    client = sync_client(settings)
    try:
        return _drive(client, record, record_path, job_spec, train_path, val_path if has_val else None,
                      settings, reporter, timeout)
    except openai.APIStatusError as exc:
        if refuses_finetuning(exc.status_code, str(exc)):
            raise FinetuningRefused(
                scrub(f"the provider refused fine-tuning ({exc.status_code}: {_first_sentence(exc)}). "
                      f"{OPENAI_FINETUNING_SUNSET}; {OPENAI_FINETUNING_ALTERNATIVES}", settings.api_key)) from None
        return {**record, "error": scrub(f"fine-tuning failed at the provider: {exc}", settings.api_key)}
    except openai.APIError as exc:
        # The journal keeps every id obtained so far, so a rerun continues from here.
        return {**record, "error": scrub(f"fine-tuning failed at the provider: {exc}", settings.api_key)}
    finally:
        client.close()


class FinetuningRefused(TaskcError):
    """The platform will not fine-tune for this account (closed to new users, no access): exit 4."""

    exit_status = ExitStatus.RUNTIME_FAILURE


_FINETUNING = re.compile(r"fine[- ]?tun", re.IGNORECASE)
_NOT_OFFERED = re.compile(r"not (available|allowed|enabled|supported|permitted)|no longer|access|new users",
                          re.IGNORECASE)


def refuses_finetuning(status: int, message: str) -> bool:
    """Whether a 4xx says fine-tuning is not offered to this account (a 403, or a 400/404 that says so),
    as opposed to a bad request that a fix of the data or settings would cure."""
    if status == 403:
        return True
    return status in (400, 404) and bool(_FINETUNING.search(message)) and bool(_NOT_OFFERED.search(message))


def _first_sentence(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    given = body.get("message")
    message = given if isinstance(given, str) else str(exc)
    return message.strip().splitlines()[0][:300] if message.strip() else "no message"


def _load_record(path: Path, fingerprint: str) -> dict[str, Any]:
    """The journal of this fine-tune; a record for different data or settings starts afresh."""
    if path.exists():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            record = {}
        if isinstance(record, dict) and record.get("fingerprint") == fingerprint:
            if record.get("status") in ("failed", "cancelled"):
                # A job that ended badly is not continued; keep its id for the record and start again.
                return {"fingerprint": fingerprint, "previous_jobs": [*record.get("previous_jobs", []),
                                                                      record.get("job_id")],
                        "training_file": record.get("training_file"),
                        "validation_file": record.get("validation_file")}
            return record
    return {"fingerprint": fingerprint}


def _drive(client: openai.OpenAI, record: dict[str, Any], record_path: Path, job_spec: dict[str, Any],
           train_path: Path, val_path: Path | None, settings: ProviderSettings, reporter: ProgressReporter,
           timeout: float | None) -> dict[str, Any]:
    def save() -> None:
        write_json(record_path, record)

    if not record.get("training_file"):
        record["training_file"] = client.files.create(file=(train_path.name, train_path.read_bytes()),
                                                      purpose="fine-tune").id
        save()
    if val_path is not None and not record.get("validation_file"):
        record["validation_file"] = client.files.create(file=(val_path.name, val_path.read_bytes()),
                                                        purpose="fine-tune").id
        save()
    if not record.get("job_id"):
        arguments: dict[str, Any] = {**job_spec, "training_file": record["training_file"],
                                     "metadata": {"taskc_fingerprint": record["fingerprint"][:32]}}
        if record.get("validation_file"):
            arguments["validation_file"] = record["validation_file"]
        job = client.fine_tuning.jobs.create(**arguments)
        record.update(job_id=job.id, model=job.model, status=job.status, created_at=job.created_at)
        save()
        reporter.message(f"fine-tuning job {job.id} created ({job.model})")
    started = time.monotonic()
    record.pop("timed_out", None)  # a job an earlier run stopped waiting for: this run waits again
    status = record.get("status")
    while True:
        job = client.fine_tuning.jobs.retrieve(record["job_id"])
        if job.status != status:
            status = job.status
            reporter.message(f"fine-tuning job {job.id}: {status}")
        record.update(status=job.status, fine_tuned_model=job.fine_tuned_model,
                      trained_tokens=job.trained_tokens, finished_at=job.finished_at)
        if job.status == "failed" and job.error is not None:
            record["error"] = scrub(str(getattr(job.error, "message", job.error)), settings.api_key)
        save()
        if job.status in _TERMINAL:
            return record
        if timeout is not None and time.monotonic() - started > timeout:
            record["timed_out"] = True  # the job keeps running; a rerun picks it up
            save()
            return record
        time.sleep(settings.poll_interval)
