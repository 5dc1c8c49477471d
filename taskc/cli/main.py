"""The `taskc` command line: one module per subcommand (cmd_<name>), listed in `COMMANDS`.

Exit statuses are part of the interface: 0 success (warnings allowed), 1 errors
in a task file, 2 usage errors; `taskc run` adds 3 for a failed pass criterion
and 4 for a runtime failure (see `taskc run --help`); 130 an interrupt (Ctrl-C). Any
exception that is not a `TaskcError` is a bug in taskc: it is reported in one line
and exits 70, never as a traceback unless TASKC_DEBUG is set (or -v is given).
Option defaults come from taskc.toml or pyproject.toml's [tool.taskc] (`config`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from taskc._version import __version__

from .start_up import uncollected_start_up

# Each command is the module cmd_<name> (its NAME, HELP, DESCRIPTION, EPILOG, add_arguments and run), imported
# only when the parser needs it: `taskc run` does not load the language server's or `diff`'s code.
COMMANDS: tuple[str, ...] = ("check", "compile", "schema", "run", "runs", "ask", "suggest", "predict", "export",
                             "diff", "fmt", "lsp", "completion")
_WHOLE_TREE = ("completion",)  # commands that read every other command's options


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (one of COMMANDS)."""
    return importlib.import_module(f"{__package__}.cmd_{name}")


_EPILOG = """\
the loop:
  taskc check examples/keto.task.yaml            find every error, with file:line:column
  taskc compile examples/keto.task.yaml -o out   prompts, plan.json, finetune.json, eval.json
  taskc run examples/keto.task.yaml              label, train, evaluate, report (offline without a key)
  taskc runs runs/keto                           the run history: what each run scored, which task version
  taskc ask runs/keto                            the pool items to label next (answers feed the next run)
  taskc suggest runs/keto                        lexicon changes that fix dev errors, each one tried
  taskc predict runs/keto new.jsonl -o out.jsonl  label new inputs with the trained predictor
  taskc export runs/keto -o export/keto          the training data for other trainers, with a dataset card
  taskc diff --git origin/main examples/keto.task.yaml   what a spec change does, for review
  taskc fmt examples/keto.task.yaml              canonical layout, comments kept
  taskc schema --install                         the JSON Schema and editor settings, for completion
  taskc lsp                                      the language server editors start (docs/editors.md)
  taskc completion bash > ~/.local/share/bash-completion/completions/taskc   shell completion

exit status: 0 ok (warnings allowed), 1 errors in a task file, 2 usage error (also:
an optional dependency is missing), 3 pass criterion failed (run), 4 runtime
failure (run), 70 an internal error (a bug in taskc: please report it),
130 interrupted (Ctrl-C).

environment:
  TASKC_DEBUG=1     show the traceback of an internal error (as -v does)
  NO_COLOR=1        no colour; FORCE_COLOR=1 colour even when not on a terminal
  OPENAI_API_KEY, OPENAI_BASE_URL   the LLM provider of run (see `taskc run --help`)

defaults for options (--prices, --concurrency, run's output directory, ...) come
from taskc.toml or the [tool.taskc] table of pyproject.toml, found from the
working directory upwards; the command line wins. `taskc -v COMMAND` shows them.
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, the top level and that one command (what parsing its
    arguments needs, without importing the other commands' modules)."""
    parser = argparse.ArgumentParser(
        prog="taskc", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
        description="Compile a domain expert's rationales (a *.task.yaml file) into LLM prompts, a generation "
                    "plan and training/eval configs; run the loop; show what a spec change does.")
    parser.add_argument("--version", action="version", version=f"taskc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", dest="main_verbose",
                        help="more detail: the defaults in use, and a traceback on an internal error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        command = command_module(name)
        sub = subparsers.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION,
                                    formatter_class=argparse.RawDescriptionHelpFormatter,
                                    epilog=command.EPILOG)
        command.add_arguments(sub)
        if "-v" not in sub._option_string_actions:  # every command takes -v; check gives it more meaning
            sub.add_argument("-v", "--verbose", action="store_true",
                             help="more detail: the defaults in use, and a traceback on an internal error")
        sub.set_defaults(handler=command.run, root_parser=parser)  # `completion` reads the whole tree
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command the arguments name, when the parser needs no other (the top level's options take no
    value, so it is the first argument that is not an option); None for the top level's `--help`, a typo,
    `completion`."""
    for argument in argv:
        if argument in ("-h", "--help"):  # the top level's help lists every command
            return None
        if argument == "--" or not argument.startswith("-"):
            return argument if argument in COMMANDS and argument not in _WHOLE_TREE else None
    return None


# ExitStatus.INTERRUPTED, written out: an interrupt can come while the compiler (where ExitStatus lives) is imported
_EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:  # wherever it comes: while importing, parsing or running the command
        print("taskc: interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED


def _main(arguments: list[str]) -> int:
    only = chosen_command(arguments)
    if only == "run" and not {"-h", "--help"} & set(arguments):
        # the local model's process, started before anything the run needs is imported (it imports
        # the compiler and scikit-learn meanwhile): runtime/model_process_spawn.py
        from taskc.runtime.model_process_spawn import spawn_early

        spawn_early()
    with uncollected_start_up() as started:  # importing and parsing: nothing for the collector to find
        from . import config  # imported here, not above: they import the compiler, which the child need not wait for
        from .output import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, json_failure

        parser = build_parser(only)
        args = parser.parse_args(arguments)
        started()  # frozen, not walked by the collection that turning it back on would start at once
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    verbose = args.main_verbose or getattr(args, "verbose", False)
    args.verbose = verbose
    try:
        defaults = config.Defaults()
        if config.applies_to(args):  # check, fmt, lsp, ... have no option a defaults file sets: not read
            defaults = config.load_defaults(Path.cwd())
            if verbose:
                print(f"taskc: {defaults.describe()}", file=sys.stderr)
        return int(args.handler(config.apply_defaults(args, defaults)))
    except UsageError as exc:
        failed = str(exc), int(exc.exit_status)
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug in taskc, never the user's fault: one line, no traceback
        if os.environ.get("TASKC_DEBUG") or verbose:
            raise
        failed = f"internal error: {type(exc).__name__}: {exc} (set TASKC_DEBUG=1 for a traceback)", EXIT_INTERNAL
    if getattr(args, "format", None) == "json":  # a script reading the result reads the failure too
        json_failure(*failed)
    else:
        print(f"taskc: {'' if failed[1] == EXIT_INTERNAL else 'error: '}{failed[0]}", file=sys.stderr)
    return failed[1]


def entry() -> None:
    """The console script (and `python -m taskc`): `main`, then exit with its status.

    What is left is frozen out of the garbage collector first (`gc.freeze`): the interpreter's last
    collection would walk every object the command made or imported (the `openai` client's pydantic
    models, a run's data), about 0.4 s after a run's work is done, only to free memory the system
    takes back at exit anyway. Exit handlers still run, and files are closed where they are used."""
    status = main()
    gc.freeze()
    sys.exit(status)
