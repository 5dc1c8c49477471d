"""The local model in a process of its own: scikit-learn is imported on the second core while the run works.

Importing scikit-learn (and the SciPy it pulls in) costs about two seconds of CPU, more than
the rest of a small run's own work. In the run's process that import either waits until
training or, in a thread, competes for the interpreter lock with the LLM calls and slows
every one of them. So `taskc run` starts a child interpreter at once (`start_early`, which
adopts the one the command line spawned first thing: runtime/model_process_spawn.py); the
child imports scikit-learn while the parent imports the `openai` client and makes the calls,
and then fits and keeps the run's local models, answering over a pipe. The parent never
imports scikit-learn: it holds `RemoteModel`s, which are `LocalModel`s whose fitting,
predictions, description and saving happen in the child.

With an endpoint the child compiles the task first (`compiled` reads its result), while the
parent loads the client: compiling and loading the client are the two longest steps before
the first call, and neither needs the other. Offline the parent compiles itself: it would
only wait, and the child must import the compiler first. A compiled task pickles whole (its
Jinja templates as their sources, compiled again on arrival).

- **The same model, the same task.** The child runs the same `LocalModel` code on the same
  data (the task, pickled, and the inputs with the rules' votes the parent worked out), so a
  model fitted there predicts and saves exactly as one fitted here, and its compile is
  `compile_task`'s (tests compare a whole run directory, and the compiled tasks).
- **Nothing lost when the child is.** A child that cannot start, dies or fails is never
  the run's failure: the task is compiled, or the model fitted, in the run's process instead,
  from the same data, and the run goes on; an error the fitting itself raises
  (LocalModelError) is raised as it is.
- **When.** Only where it pays: when scikit-learn is not imported yet (a fresh `taskc run`,
  not a test or a program that imported it already). TASKC_MODEL_PROCESS=0 never starts the
  child, =1 always does (tests use it).
- **Lifetime.** The child is stopped when the run's last model is gone or at exit, and ends
  by itself when its pipe closes (the parent was killed). Every request is answered before
  the next is sent and every save is written before its answer, so stopping it loses nothing.
"""

from __future__ import annotations

import copyreg
import gc
import io
import itertools
import os
import pickle
import struct
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

from taskc.compiler import TaskIR

if TYPE_CHECKING:
    from taskc.compiler import CompileResult

from .features import ItemBatch
from .labeling import LabelingFunction
from .local_model import STRONGEST, Feature, LocalModel, LocalModelError, TrainingExample
from .model_process_spawn import ENVIRONMENT_SWITCH, adopt, stop, worth_starting

_HEADER = struct.Struct("<Q")  # each message: its length, then its pickle
CompileArguments = tuple[str, dict[str, Any]]  # the task file and compile_task's keyword options
Trainer = Callable[[TaskIR, Sequence[LabelingFunction], ItemBatch, Sequence[TrainingExample]], LocalModel]


class _ProcessLost(Exception):
    """The child cannot answer (it did not start, died, or failed): the model is fitted here instead."""


# -- the messages ----------------------------------------------------------------------------------

def _mapping_proxy(contents: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(contents)


class _Pickler(pickle.Pickler):
    # the task's read-only mappings (MappingProxyType) do not pickle by themselves
    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[MappingProxyType] = lambda proxy: (_mapping_proxy, (dict(proxy),))


def _encode(message: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    data = buffer.getvalue()
    return _HEADER.pack(len(data)) + data


def _write(stream: IO[bytes], message: Any) -> None:
    stream.write(_encode(message))  # the whole message is pickled before a byte is written
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the pipe closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed in the middle of a message")
    return pickle.loads(data)


# -- the parent's side -----------------------------------------------------------------------------

class ModelProcess:
    """The child interpreter and the pipe to it; one request at a time."""

    def __init__(self, child: subprocess.Popen[bytes], compiling: CompileArguments | None = None) -> None:
        self._child = child
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self._broken = False
        self.compiling = compiling  # what the child compiles first; its answer is read by `compiled`
        self.close = weakref.finalize(self, stop, child)  # the child ends when this does, or at close()

    @classmethod
    def start(cls, compiling: CompileArguments | None = None) -> ModelProcess | None:
        """The child, importing scikit-learn from now on (after compiling ``compiling``'s task, when given);
        None when no interpreter can be started."""
        child = adopt()
        if child is None:
            return None
        try:
            assert child.stdin is not None
            _write(child.stdin, ("compile", 0, compiling) if compiling is not None else ("start", 0, ()))
        except OSError:  # it died at once
            stop(child)
            return None
        return cls(child, compiling)

    def compiled(self) -> CompileResult | None:
        """The child's compile of ``compiling``'s task; None when it has none (the caller compiles)."""
        with self._lock:
            return self._take_compiled()

    def _take_compiled(self) -> CompileResult | None:
        """Read the answer to the compile the child was first asked for, if nobody has (the lock held)."""
        if self.compiling is None:
            return None
        self.compiling = None
        try:
            return self._answer()
        except _ProcessLost:
            return None

    @property
    def alive(self) -> bool:
        return not self._broken and self._child.poll() is None

    def train(self, task: TaskIR, functions: Sequence[LabelingFunction], batch: ItemBatch,
              examples: Sequence[TrainingExample]) -> LocalModel:
        """`local_model.train`, fitted in the child (or here, when the child is lost)."""
        return RemoteModel(self, task, functions).fit(batch, [e.label for e in examples], [e.weight for e in examples])

    def new_key(self) -> int:
        return next(self._keys)

    def request(self, operation: str, key: int, *arguments: Any) -> Any:
        """The child's answer to one operation on model ``key``; _ProcessLost when it has none."""
        with self._lock:
            self._take_compiled()  # a compile nobody read: its answer comes first on the pipe
            if not self.alive:
                raise _ProcessLost("the model process is gone")
            try:
                message = _encode((operation, key, arguments))
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise _ProcessLost(f"cannot send the data to the model process: {exc}") from None
            try:
                assert self._child.stdin is not None
                self._child.stdin.write(message)
                self._child.stdin.flush()
            except (OSError, ValueError) as exc:
                self._lose()
                raise _ProcessLost(f"the model process stopped answering: {exc}") from None
            return self._answer()

    def _answer(self) -> Any:
        """Read the child's answer to the last message (the lock held)."""
        try:
            assert self._child.stdout is not None
            status, value = _read(self._child.stdout)
        except Exception as exc:  # noqa: BLE001 - a closed pipe, or an answer that does not unpickle
            self._lose()
            raise _ProcessLost(f"the model process stopped answering: {exc}") from None
        if status == "refused":  # the fitting's own error: the same here as in the child
            raise LocalModelError(value)
        if status != "ok":
            raise _ProcessLost(f"the model process failed:\n{value}")
        return value

    def _lose(self) -> None:
        self._broken = True
        self._child.kill()

    def forget(self, key: int) -> None:
        """Let the child drop model ``key`` (its RemoteModel is gone)."""
        if not self.alive or not self._lock.acquire(blocking=False):  # never wait in a finaliser
            return
        try:
            assert self._child.stdin is not None
            self._child.stdin.write(_encode(("forget", key, ())))
            self._child.stdin.flush()
        except (OSError, ValueError):
            self._lose()
        finally:
            self._lock.release()


class RemoteModel(LocalModel):
    """A `LocalModel` fitted and kept in the model process; fitted here instead when the process is lost."""

    def __init__(self, process: ModelProcess, task: TaskIR, functions: Sequence[LabelingFunction]) -> None:
        super().__init__(task, functions)
        self._process: ModelProcess | None = process
        self._key = process.new_key()
        self._fit_arguments: tuple[ItemBatch, list[str], list[float]] | None = None

    def fit(self, batch: ItemBatch, labels: Sequence[str], sample_weight: Sequence[float]) -> LocalModel:
        self._fit_arguments = (batch, list(labels), [float(w) for w in sample_weight])
        rationales = [f.rationale_id for f in self.functions]
        answer = self._ask("fit", self.task, rationales, *self._fit_arguments)
        if answer is _HERE:
            return self
        self.fit_warnings_ = answer
        assert self._process is not None
        weakref.finalize(self, self._process.forget, self._key)
        return self

    def predict_proba(self, batch: ItemBatch) -> Any:
        answer = self._ask("predict_proba", batch)
        return super().predict_proba(batch) if answer is _HERE else answer

    def strongest_features(self, top: int = STRONGEST) -> dict[str, list[Feature]]:
        answer = self._ask("strongest_features", top)
        return super().strongest_features(top) if answer is _HERE else answer

    def feature_groups(self) -> list[str]:
        answer = self._ask("feature_groups")
        return super().feature_groups() if answer is _HERE else answer

    def describe(self, examples: Sequence[TrainingExample], spec_hash: str) -> dict[str, Any]:
        answer = self._ask("describe", list(examples), spec_hash)
        return super().describe(examples, spec_hash) if answer is _HERE else answer

    def save(self, directory: Path, metadata: Any) -> None:
        if self._ask("save", Path(directory).resolve(), dict(metadata)) is _HERE:
            super().save(directory, metadata)

    @property
    def fitted_here(self) -> bool:
        """Whether the model lives in this process (the child was lost), not in the child."""
        return self._process is None

    def _ask(self, operation: str, *arguments: Any) -> Any:
        """The child's answer, or _HERE once the model lives in this process (fitted here on the way)."""
        if self._process is not None:
            try:
                return self._process.request(operation, self._key, *arguments)
            except _ProcessLost:
                self._process = None
                assert self._fit_arguments is not None
                super().fit(*self._fit_arguments)  # raises what fitting raises, as it would have in the child
        return _HERE


_HERE = object()  # `RemoteModel._ask`: do it in this process


# -- choosing ----------------------------------------------------------------------------------------

_early: ModelProcess | None = None


def start_early(spec: str | Path | None = None, **compile_options: Any) -> None:
    """Start the child for the run this process is about to make (`taskc run`). With ``spec``, the child
    compiles it first (`compile_task`'s options; read the result with `compiled`): worth it when this
    process has other work meanwhile (loading the LLM client), not when it would only wait, since the
    child must import the compiler first."""
    global _early
    if _early is None and worth_starting():
        _early = ModelProcess.start(None if spec is None else (str(spec), compile_options))


def compiled(spec: str | Path, **compile_options: Any) -> CompileResult:
    """`compile_task(spec, **compile_options)`: the child's, when `start_early` asked it the same, else here."""
    from taskc.compiler import compile_task

    if _early is not None and _early.compiling == (str(spec), compile_options):
        result = _early.compiled()
        if result is not None:
            return result
    return compile_task(spec, **compile_options)


def discard_early() -> None:
    """Stop the child `start_early` started if no `trainer` took it (the run ended before it trained: bad
    data, an error in the task file): a program that runs command after command in one process (a notebook,
    a test) then keeps none of them."""
    global _early
    process, _early = _early, None
    if process is not None:
        process.close()


def trainer() -> Trainer:
    """How this run fits its local models: in the child started early (or now, when it pays), else here."""
    global _early
    process, _early = _early, None
    if process is None and worth_starting():
        process = ModelProcess.start()
    if process is None:
        from .local_model import train

        return train
    return process.train


# -- the child's side ------------------------------------------------------------------------------

def same_file(parents: str) -> bool:
    """Whether this module is the file the parent imported (see model_process_spawn.CHILD_COMMAND)."""
    try:
        return Path(__file__).resolve() == Path(parents).resolve()
    except OSError:
        return False


def serve() -> None:
    """The child's loop: compile the task when that is the first request, import scikit-learn, then answer
    requests until the pipe closes (Ctrl-C is ignored from the start: CHILD_COMMAND)."""
    # Until scikit-learn is in, this process makes long-lived objects only (the modules, the compiled task):
    # the garbage collector is paused, then what it would walk for nothing is frozen out of its collections.
    gc.disable()
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot garble the answers
    requests = sys.stdin.buffer
    from .labeling import labeling_functions
    from .local_model import warm_up

    try:
        operation, _, arguments = _read(requests)
    except EOFError:
        return
    sending = None
    if operation == "compile":  # the task first: the parent waits for it; scikit-learn only later
        sending = _send_compiled(answers, arguments)
    warm_up()
    if sending is not None:
        sending.join()
    gc.freeze()
    gc.enable()
    models: dict[int, LocalModel] = {}
    while True:
        try:
            operation, key, arguments = _read(requests)
        except EOFError:
            return
        if operation == "forget":
            models.pop(key, None)
            continue
        try:
            if operation == "fit":
                task, rationales, batch, labels, weights = arguments
                functions = labeling_functions(task)
                if [f.rationale_id for f in functions] != rationales:
                    raise ValueError(f"the task's rules are {[f.rationale_id for f in functions]}, not {rationales}")
                models[key] = LocalModel(task, functions).fit(batch, labels, weights)
                reply: Any = models[key].fit_warnings_
            elif operation in ("predict_proba", "strongest_features", "feature_groups", "describe", "save"):
                reply = getattr(models[key], operation)(*arguments)
            else:
                raise ValueError(f"unknown operation {operation!r}")
            _write(answers, ("ok", reply))
        except LocalModelError as exc:
            _write(answers, ("refused", str(exc)))
        except Exception:  # noqa: BLE001 - any failure goes back to the parent, which fits the model itself
            _write(answers, ("failed", traceback.format_exc()))


def _send_compiled(answers: IO[bytes], arguments: CompileArguments) -> threading.Thread:
    """Compile the task and send the result from a thread: the parent reads it only once it is ready
    for it, and meanwhile the child imports scikit-learn."""
    from taskc.compiler import compile_task

    spec, options = arguments
    try:
        message = _encode(("ok", compile_task(spec, **options)))
    except Exception:  # noqa: BLE001 - the parent then compiles the task itself
        message = _encode(("failed", traceback.format_exc()))

    def send() -> None:
        try:
            answers.write(message)
            answers.flush()
        except OSError:
            pass  # the parent is gone or did not wait: the next read of the pipe tells
    thread = threading.Thread(target=send, name="taskc-send-compiled", daemon=True)
    thread.start()
    return thread


__all__ = ["ENVIRONMENT_SWITCH", "ModelProcess", "RemoteModel", "Trainer", "compiled", "discard_early", "same_file",
           "start_early", "trainer", "worth_starting"]
