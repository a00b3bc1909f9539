"""Regenerate docs/report.png, the picture of the HTML report in the README: the sample week audited,
then its first screen (and its first finding) photographed by headless Chromium.

    python scripts/screenshot_report.py            # needs Chromium (scripts/install_test_deps.sh) and '.[dev]'
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "report.png"
WIDTH, HEIGHT = 1280, 2200


def main() -> int:
    from playwright.sync_api import sync_playwright

    browser = shutil.which("chromium") or shutil.which("google-chrome")
    if browser is None:
        print("no chromium on PATH: run scripts/install_test_deps.sh", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "llmaudit", "analyze", str(REPO / "sample_traces"), "--html", str(page_file),
                        "-q"], check=True, stdout=subprocess.DEVNULL)
        with sync_playwright() as p:
            chrome = p.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu"])
            page = chrome.new_page(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1)
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            OUT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(OUT), full_page=False)
            chrome.close()
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
