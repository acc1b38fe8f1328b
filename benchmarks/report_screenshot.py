"""Open a report page in headless Chromium and save a screenshot, to see that it renders (not run in CI).

    apt-get install -y chromium                    # Debian's chromium
    python benchmarks/report_screenshot.py report/index.html --out benchmarks/report_screenshot.png
    python benchmarks/report_screenshot.py --runs runs/demo runs/bench-sst2 --remeasure   # build one first

The browser runs with networking, sync and component updates off and a throw-away profile, so
a page that needed the network would show it. The PNG is shrunk (palette, then size) to stay
under --max-kb.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def screenshot(page: Path, out: Path, *, width: int = 1400, height: int = 2000, browser: str = "chromium") -> None:
    """Render ``page`` at ``width`` x ``height`` CSS pixels into ``out`` (PNG)."""
    exe = shutil.which(browser)
    if exe is None:
        sys.exit(f"{browser} not found; install it with: apt-get install -y chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="protege-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
               f"--window-size={width},{height}", page.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not out.exists():
        sys.exit(f"chromium failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def shrink(png: Path, max_kb: int) -> None:
    """Re-encode ``png`` with a 256-colour palette, then halve its size until it is under ``max_kb``."""
    from PIL import Image

    img = Image.open(png).convert("RGB")
    while True:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
        if png.stat().st_size <= max_kb * 1024 or img.width < 400:
            return
        img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page", nargs="?", help="index.html of a report (or give --runs to build one)")
    p.add_argument("--runs", nargs="+", help="build a report of these run folders first (protege.report)")
    p.add_argument("--report", default=None, help="where to build it (default: a temporary folder)")
    p.add_argument("--remeasure", action="store_true", help="with --runs: re-time the models here (protege.report remeasure)")
    p.add_argument("--speed-seconds", type=float, default=3.0, help="with --remeasure: time budget per model")
    p.add_argument("--out", default=str(Path(__file__).with_name("report_screenshot.png")))
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=2000)
    p.add_argument("--max-kb", type=int, default=300)
    args = p.parse_args()
    if bool(args.page) == bool(args.runs):
        p.error("give either a page or --runs")
    page = Path(args.page) if args.page else None
    if args.runs:
        import protege

        folder = Path(args.report or tempfile.mkdtemp(prefix="protege-report-"))
        result = protege.report(args.runs, out=folder, remeasure=args.remeasure, speed_seconds=args.speed_seconds)
        for path, why in result.skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
        print(result.text)
        page = folder / "index.html"
    out = Path(args.out)
    screenshot(page, out, width=args.width, height=args.height)
    shrink(out, args.max_kb)
    print(f"screenshot of {page} saved to {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
