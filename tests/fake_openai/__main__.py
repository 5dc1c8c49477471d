"""Run the fake OpenAI server in the foreground for manual testing.

Either form works (from the repository root)::

    python tests/fake_openai --port 8765 --latency 0.1 --rate-limit 0.1
    cd tests && python -m fake_openai --port 8765 --latency 0.1 --rate-limit 0.1

It prints the base URL, serves on 127.0.0.1 until Ctrl-C or SIGTERM, then prints the stats
as JSON. Every Faults field has a flag: --rate-limit, --server-error, --timeout, --reset,
--malformed, --truncated, --schema-violation, --off-target, --empty-strings,
--repeats, --retry-after, --timeout-seconds, --control-plane.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path

if __package__:
    from .server import FakeOpenAI, Faults
else:  # `python tests/fake_openai` puts this folder, not its parent, on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fake_openai.server import FakeOpenAI, Faults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fake_openai", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault choice")
    parser.add_argument("--finetune-polls", type=int, default=3)
    parser.add_argument("--batch-polls", type=int, default=2)
    # One flag per Faults field, e.g. --rate-limit 0.1 --retry-after 1 --control-plane
    for field in dataclasses.fields(Faults):
        flag = "--" + field.name.replace("_", "-")
        if field.type in (bool, "bool"):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=float, default=field.default)
    args = parser.parse_args(argv)
    faults = Faults(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Faults)})
    server = FakeOpenAI(faults=faults, latency=args.latency, seed=args.seed, port=args.port,
                        finetune_polls_to_finish=args.finetune_polls, batch_polls_to_finish=args.batch_polls,
                        record_requests=False)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with server:
        print(server.base_url, flush=True)
        while not done.wait(0.5):  # a timed wait lets the signal handlers run promptly
            pass
    print(json.dumps(server.stats.snapshot(), indent=2), flush=True)


if __name__ == "__main__":
    main()
