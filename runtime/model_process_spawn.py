"""Starting the model process's interpreter, before `taskc run` has imported anything it needs.

The child (runtime/model_process.py) imports the compiler and then scikit-learn: about 2.5 s
of CPU. The sooner it starts, the more of that happens while the run's process is importing
the compiler, the runtime and the `openai` client (which takes it about as long) instead of
while it makes the LLM calls, which then compete with it for the machine's cores. So the
command line spawns it first thing (`spawn_early`, before it imports the compiler), and
`ModelProcess.start` adopts that interpreter (`adopt`) once the run knows what to ask it.

This module imports nothing of taskc's and nothing that is not in the standard library: its
whole cost is the `subprocess.Popen`.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from pathlib import Path

ENVIRONMENT_SWITCH = "TASKC_MODEL_PROCESS"  # "0": never start the child; "1": always
# The child runs model_process's `serve`, and only the very file this process would import: an interpreter
# that finds no taskc, or another copy of it (another version installed beside a source checkout), exits at
# once and without a word, and the run does the work itself.
CHILD_COMMAND = """import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it stops this process
try:
    from taskc.runtime import model_process
except ImportError:
    raise SystemExit(3)
if model_process.same_file(sys.argv[1]):
    model_process.serve()
else:
    raise SystemExit(3)
"""
MODEL_PROCESS_FILE = str(Path(__file__).with_name("model_process.py"))

_spawned: subprocess.Popen[bytes] | None = None


def worth_starting() -> bool:
    """Whether a child pays: scikit-learn is not imported yet (or TASKC_MODEL_PROCESS says so)."""
    switch = os.environ.get(ENVIRONMENT_SWITCH, "").strip()
    if switch in ("0", "1"):
        return switch == "1"
    return "sklearn" not in sys.modules


def spawn() -> subprocess.Popen[bytes] | None:
    """A new child interpreter waiting for its first request; None when none can be started."""
    if not sys.executable:
        return None
    try:
        return subprocess.Popen([sys.executable, "-c", CHILD_COMMAND, MODEL_PROCESS_FILE],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
    except OSError:
        return None


def spawn_early() -> None:
    """Start the child now, for a `ModelProcess.start` to come (`taskc run`, before its imports).

    A child nobody adopts (the command failed before it needed one) is stopped at exit."""
    global _spawned
    if _spawned is None and worth_starting():
        _spawned = spawn()


def adopt() -> subprocess.Popen[bytes] | None:
    """The child `spawn_early` started, if it is still running (then it is the caller's), else a new one."""
    global _spawned
    child, _spawned = _spawned, None
    if child is not None and child.poll() is None:
        return child
    if child is not None:
        stop(child)
    return spawn()


def stop(child: subprocess.Popen[bytes]) -> None:
    """End a child: it holds nothing that is not saved or answered already (each request is answered
    before the next is sent), so it is killed rather than waited for while it tears down scikit-learn,
    which takes a few tenths of a second."""
    if child.poll() is None:
        child.kill()
    for stream in (child.stdin, child.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    child.wait()


@atexit.register
def _stop_unadopted() -> None:
    if _spawned is not None:  # the run ended before it needed the child (a usage error, --help)
        stop(_spawned)
