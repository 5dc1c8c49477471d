"""Benchmark: the whole-process time of a 500-call generation job, beside the ideal (not a test; prints numbers).

`taskc run` on the keto task reshaped into exactly 500 generation calls (one example per call, no pool and
no gold set, so generation is the only LLM work), against the fake OpenAI server with a 100 ms latency per
request, at 50 requests in flight. The ideal is 500 / 50 × 0.1 s = 1.0 s; everything above it is taskc's
own work around the calls: start-up and imports, compiling, assembling the dataset, training, the report.
Each run is a fresh process and a fresh run directory (nothing cached; taskc's modules compiled to
bytecode first, as an install from a wheel has them); the number is the median of
--repeat runs, with their range, and the median seconds of each phase from `--format json` events.
Aim: at most 2.5 s. The server runs in its own process, so its work does not compete for our interpreter
(it does compete for the machine's cores, as taskc's model process does: see runtime/model_process.py).
Where /proc tells the server's CPU, the CPU seconds of every process (taskc's two and the server) divided
by the cores is printed too: no schedule of that work can end sooner, so it says how much of the gap to the
ideal is waiting (which better overlap can win back) and how much is work (which only less CPU can).
With --in-process, each repeat also runs taskc with TASKC_MODEL_PROCESS=0 (scikit-learn imported and the
model fitted in the run's own process), turn about, to measure what the model process saves.
With --distilabel PYTHON (an interpreter that has distilabel installed, e.g. a venv of its own: it is no
dependency of taskc), each repeat also runs the same number of calls as a distilabel pipeline (one
TextGeneration call per row, 50 rows per batch, its OpenAILLM against the same server), turn about with
taskc, so the two are measured side by side on the same machine state.
With --floor, each repeat also runs the least any program can do for this job with taskc's libraries (one
process imports the openai client and makes the calls, another imports scikit-learn and fits a TF-IDF
logistic regression on as many texts as the run trains on; nothing else), turn about: the whole-process time
taskc could reach without leaving them. Its CPU with the server's, over the cores, is printed too: the least
time in which any program using these libraries could do this job on this machine.
Run from the repository root:  python bench/run_overhead.py [--repeat N] [--calls N] [--latency S]
                                                            [--distilabel PYTHON] [--in-process] [--floor]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from throughput import FakeServerProcess  # the fake server in its own process (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
IN_FLIGHT = 50


def project_of(calls: int, work: Path) -> Path:
    """The keto task with one example per call and counts that make exactly ``calls`` generation calls."""
    spec = yaml.safe_load((ROOT / "examples" / "keto.task.yaml").read_text(encoding="utf-8"))
    rationales = len(spec["rationales"])
    per_rationale = calls // rationales
    rest = calls - per_rationale * rationales  # made up by the class cells (one per class)
    classes = len(spec["classes"])
    if rest % classes:
        per_rationale -= 1
        rest += rationales
    if rest % classes:
        raise SystemExit(f"cannot shape the keto task into exactly {calls} calls")
    spec["generate"].update(per_call=1, per_rationale=per_rationale, near_misses=0, per_class=rest // classes)
    spec.pop("pool", None)
    spec.pop("eval", None)
    project = work / "project"
    shutil.copytree(ROOT / "examples" / "data", project / "data")
    path = project / "keto.task.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def one_run(spec: Path, run_dir: Path, server: FakeServerProcess, in_process: bool = False
            ) -> tuple[float, dict[str, float], int]:
    """Wall seconds of one `taskc run` process, its phases' seconds (and "cpu": the CPU seconds the process
    and its model process used, user + system, which a busy machine inflates less than the wall time;
    "server_cpu": the server's, where /proc tells), and the calls it made. ``in_process``: with
    TASKC_MODEL_PROCESS=0 (no model process)."""
    base_url = server.base_url
    env = os.environ | {"OPENAI_API_KEY": "sk-bench", "TASKC_MODEL_PROCESS": "0" if in_process else ""}
    command = [sys.executable, "-m", "taskc", "run", str(spec), "-o", str(run_dir), "--base-url", base_url,
               "--concurrency", str(IN_FLIGHT), "--json"]  # the alias: older versions have it too
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _server_cpu(server)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = _server_cpu(server)
    if done.returncode not in (0, 3):
        raise SystemExit(f"taskc run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    phases: dict[str, float] = {"cpu": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime}
    if server_before is not None and server_after is not None:
        phases["server_cpu"] = server_after - server_before
    for line in done.stderr.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "phase" and event.get("status") == "done":
            phases[event["phase"]] = float(event["seconds"])
    made = json.loads(done.stdout)["llm"]["generation"]["calls_made"]
    return seconds, phases, made


def _server_cpu(server: FakeServerProcess) -> float | None:
    try:
        return server.cpu_seconds()
    except OSError:  # no /proc: the bound below is not printed
        return None


DISTILABEL_PIPELINE = """
import sys
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration

base_url, calls, in_flight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with Pipeline(name="taskc-overhead") as pipeline:
    rows = [{"instruction": f"Write one keto dish as JSON (number {i})."} for i in range(calls)]
    load = LoadDataFromDicts(data=rows, batch_size=calls)
    generate = TextGeneration(llm=OpenAILLM(model="gpt-4o-mini", base_url=base_url, api_key="sk-bench"),
                              input_batch_size=in_flight)
    load >> generate
if __name__ == "__main__":
    made = len(pipeline.run(use_cache=False)["default"]["train"])
    print(made)
"""


# The least any program can do for this job with taskc's libraries: one process imports the openai client and
# makes the calls (the SDK's generic post on its aiohttp transport, as taskc does), while another imports
# scikit-learn and then fits a TF-IDF logistic regression on as many short texts as the run trains on.
# No compiling, validating, caching, rules, report or files.
LIBRARY_FLOOR = r"""
import asyncio, gc, subprocess, sys
FIT = '''
import sys
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
sys.stdin.readline()
texts = [f"dish {i} with {'bacon eggs' if i % 2 else 'rice bread'} number {i % 97}" for i in range(2346)]
LogisticRegression(max_iter=1000).fit(TfidfVectorizer().fit_transform(texts), [i % 2 for i in range(2346)])
print("fitted", flush=True)
'''
child = subprocess.Popen([sys.executable, "-c", FIT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
import httpx2
import openai

base_url, calls, in_flight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write one keto dish as JSON. " * 100}],
        "response_format": {"type": "json_object"}}


async def main():
    clients = [openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=0,
                                  http_client=openai.DefaultAioHttpClient()) for _ in range(2)]
    slots = asyncio.Semaphore(in_flight)

    async def one(i):
        async with slots:
            answer = await clients[i % 2].post("/chat/completions", cast_to=httpx2.Response, body=body)
            return answer.json()
    answers = await asyncio.gather(*(one(i) for i in range(calls)))
    for client in clients:
        await client.close()
    return len(answers)

made = asyncio.run(main())
child.stdin.write("go\n")
child.stdin.flush()
assert child.stdout.readline().strip() == "fitted"
child.wait()
print(made)
gc.freeze()  # no last collection of the whole heap at exit (as taskc's entry does)
"""


def floor_run(script: Path, server: FakeServerProcess, calls: int) -> tuple[float, float, float | None]:
    """Wall and CPU seconds (both processes) of one LIBRARY_FLOOR run, and the server's CPU seconds meanwhile
    (None without /proc)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _server_cpu(server)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), server.base_url, str(calls), str(IN_FLIGHT)],
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = _server_cpu(server)
    if done.returncode != 0 or done.stdout.strip().splitlines()[-1:] != [str(calls)]:
        raise SystemExit(f"the library floor failed ({done.returncode}):\n{done.stderr[-2000:]}")
    served = None if server_before is None or server_after is None else server_after - server_before
    return seconds, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, served


def distilabel_run(python: str, script: Path, base_url: str, calls: int, home: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the pipeline's worker processes included) of one distilabel run."""
    env = os.environ | {"HOME": str(home), "DISTILABEL_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([python, str(script), base_url, str(calls), str(IN_FLIGHT)], env=env,
                          capture_output=True, text=True, check=False, cwd=script.parent)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or lines[-1] != str(calls):
        raise SystemExit(f"distilabel run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def compile_bytecode() -> int:
    """Compile taskc's modules to bytecode, as installing it from a wheel does: an editable install (this
    checkout) gets none from pip, and where PYTHONDONTWRITEBYTECODE is set, every run would compile its
    modules again from source (about 0.2 s here), which no installed taskc does. Returns the files written."""
    import compileall
    import importlib.util

    locations = [Path(location) for package in ("taskc", "taskc.spec", "taskc.compiler", "taskc.runtime")
                 if (found := importlib.util.find_spec(package)) is not None
                 for location in found.submodule_search_locations or []]

    def compiled() -> int:
        return sum(1 for location in locations for _ in location.rglob("__pycache__/*.pyc"))
    before = compiled()
    for location in locations:
        compileall.compile_dir(location, quiet=1)
    return compiled() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the fake server takes per request")
    parser.add_argument("--distilabel", metavar="PYTHON", help="an interpreter with distilabel installed: run "
                        "the same number of calls with it too, turn about with taskc")
    parser.add_argument("--floor", action="store_true", help="also run the least any program can do for this "
                        "job with taskc's libraries (import the openai client and make the calls; import "
                        "scikit-learn and fit, in a second process), turn about")
    parser.add_argument("--in-process", action="store_true", help="also run taskc without its model process "
                        "(TASKC_MODEL_PROCESS=0), turn about")
    args = parser.parse_args()
    ideal = args.calls / IN_FLIGHT * args.latency
    compiled = compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="taskc-overhead-") as tmp:
        work = Path(tmp)
        spec = project_of(args.calls, work)
        server = FakeServerProcess(args.latency)
        try:
            one_run(spec, work / "warm-up", server)  # the page cache, not taskc's cache: a new dir each run
            results, theirs, alone, floors = [], [], [], []
            floor_script = work / "library_floor.py"
            floor_script.write_text(LIBRARY_FLOOR, encoding="utf-8")
            script = work / "distilabel_pipeline.py"
            script.write_text(DISTILABEL_PIPELINE, encoding="utf-8")
            if args.distilabel:
                distilabel_run(args.distilabel, script, server.base_url, args.calls, work / "home")  # warm-up
            for i in range(args.repeat):
                results.append(one_run(spec, work / f"run{i}", server))
                if args.in_process:
                    alone.append(one_run(spec, work / f"alone{i}", server, in_process=True))
                if args.floor:
                    floors.append(floor_run(floor_script, server, args.calls))
                if args.distilabel:
                    theirs.append(distilabel_run(args.distilabel, script, server.base_url, args.calls, work / "home"))
        finally:
            server.stop()
    walls = [wall for wall, _, _ in results]
    assert all(made == args.calls for _, _, made in results), [made for _, _, made in results]
    print(f"{args.calls}-call generation job, {IN_FLIGHT} in flight, {args.latency * 1000:.0f} ms per request, "
          f"{args.repeat} runs (each a fresh process and run directory)")
    if compiled:
        print(f"  (first compiled {compiled} of taskc's modules to bytecode, as installing from a wheel does)")
    print(f"  whole process: median {statistics.median(walls):.2f} s (range {min(walls):.2f}–{max(walls):.2f}); "
          f"ideal {ideal:.2f} s; ratio {statistics.median(walls) / ideal:.2f}")
    cpu = [phases["cpu"] for _, phases, _ in results]
    print(f"  CPU of the taskc processes: median {statistics.median(cpu):.2f} s; load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a busy machine stretches the wall time)")
    if all("server_cpu" in phases for _, phases, _ in results):
        every = statistics.median([phases["cpu"] + phases["server_cpu"] for _, phases, _ in results])
        cores = os.cpu_count() or 1
        print(f"  CPU of every process (taskc's, its model process's, the server's): median {every:.2f} s; on "
              f"{cores} cores no schedule of that work ends in less than {every / cores:.2f} s")
    names = sorted({name for _, phases, _ in results for name in phases} - {"cpu", "server_cpu"})
    for name in names:
        values = [phases.get(name, 0.0) for _, phases, _ in results]
        print(f"  {name:>12}: median {statistics.median(values):.2f} s")
    if alone:
        alone_walls = [wall for wall, _, _ in alone]
        print(f"  without the model process (TASKC_MODEL_PROCESS=0), turn about: median "
              f"{statistics.median(alone_walls):.2f} s (range {min(alone_walls):.2f}–{max(alone_walls):.2f}); "
              f"with / without {statistics.median(walls) / statistics.median(alone_walls):.2f}")
    if floors:
        floor_walls = [wall for wall, _, _ in floors]
        print(f"  the library floor (openai's calls, scikit-learn's import and fit, nothing else), turn about: "
              f"median {statistics.median(floor_walls):.2f} s (range {min(floor_walls):.2f}–{max(floor_walls):.2f}),"
              f" CPU {statistics.median([c for _, c, _ in floors]):.2f} s; taskc / floor "
              f"{statistics.median(walls) / statistics.median(floor_walls):.2f}")
        if all(served is not None for _, _, served in floors):
            # The floor's CPU with the server's, over the cores: what no program using these libraries for this
            # job can beat on this machine, however well it overlaps its work.
            least = statistics.median([cpu + (served or 0.0) for _, cpu, served in floors])
            cores = os.cpu_count() or 1
            print(f"    its CPU with the server's: median {least:.2f} s; on {cores} cores no program using these "
                  f"libraries for this job ends in less than {least / cores:.2f} s")
    if theirs:
        their_walls = [wall for wall, _ in theirs]
        print(f"  distilabel, the same calls turn about: median {statistics.median(their_walls):.2f} s (range "
              f"{min(their_walls):.2f}–{max(their_walls):.2f}), CPU {statistics.median([c for _, c in theirs]):.2f} s;"
              f" taskc / distilabel {statistics.median(walls) / statistics.median(their_walls):.2f}")
    accounted = statistics.median([sum(v for k, v in p.items() if k not in ("cpu", "server_cpu"))
                                   for _, p, _ in results])
    print(f"  outside the phases (start-up, imports, compile, exit): median "
          f"{statistics.median(walls) - accounted:.2f} s")


if __name__ == "__main__":
    main()
