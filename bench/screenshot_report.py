"""Screenshot a taskc HTML report in headless Chromium at desktop (1280 px) and phone (390 px) width.

    python bench/screenshot_report.py runs/keto/report.html -o shots/

writes shots/report-1280.png and shots/report-390.png (2000 px tall by default), so a person can look at
what the report's pictures and tables look like, and a test can check that the page renders. The page is
self-contained: Chromium is started with networking off and a throwaway profile.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTHS = (1280, 390)


def chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def shoot(page: Path, out_dir: Path, height: int = 2000) -> list[Path]:
    browser = chromium()
    if browser is None:
        raise SystemExit("no chromium found (install it, or pass a machine that has one)")
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    for width in WIDTHS:
        target = out_dir / f"report-{width}.png"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
                            "--proxy-bypass-list=<-loopback>",
                            f"--screenshot={target}", f"--window-size={width},{height}",
                            page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
        shots.append(target)
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="a report.html")
    parser.add_argument("-o", "--output", type=Path, default=Path("shots"), help="directory for the PNGs")
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args()
    for shot in shoot(args.page, args.output, args.height):
        print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
