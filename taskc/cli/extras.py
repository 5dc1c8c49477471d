"""Optional dependencies of the command line: which extra a command needs, and the message when it is missing.

The base install (`pip install taskc-compiler`) holds the compiler's dependencies only, so that linting task
files (`check`, `compile`, `fmt`, `diff`, `schema`, the pre-commit hooks) stays small. The runtime's
dependencies come with the `run` extra; `run`, `predict` and `export` call `missing_run_extra` first and end
with a clear message and exit status 2 instead of an ImportError deep inside the runtime.
"""

from __future__ import annotations

import importlib.util
import sys

DISTRIBUTION = "taskc-compiler"  # the name on the package index; the command and the import package are `taskc`

# import name -> distribution name, for what the `run` extra installs (pyproject.toml, [project.optional-...])
RUN_EXTRA_MODULES: dict[str, str] = {
    "openai": "openai",
    "aiohttp": "aiohttp",
    "rich": "rich",
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "joblib": "joblib",
    "rapidfuzz": "rapidfuzz",
}


def install_command(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def _importable(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses the module, or a half-installed package
        return False


def missing_modules(modules: dict[str, str]) -> list[str]:
    """The distributions of `modules` that cannot be imported here, in the order given."""
    return [distribution for module, distribution in modules.items() if not _importable(module)]


def missing_run_extra(command: str) -> str | None:
    """Why `taskc COMMAND` cannot run in this install (the runtime's dependencies are missing), or None."""
    missing = missing_modules(RUN_EXTRA_MODULES)
    if not missing:
        return None
    return (f"`taskc {command}` needs the runtime's dependencies, which this install lacks ({', '.join(missing)}); "
            f"install them with: {install_command('run')} (with pipx: pipx install --force "
            f"'{DISTRIBUTION}[run]'). The base install checks, compiles, formats and diffs task files only.")
