"""Refresh docs/screenshots/: each notebook's top in JupyterLab, and notebook 09's launched page.

    python tools/screenshots.py

Runs ``tests/test_jupyterlab.py`` with ``CHATBOT_SCREENSHOTS=1``: a real JupyterLab on a loopback
port serves a copy of the workshop, and Chromium opens each notebook, takes its top, clicks
Run > Run All Cells and checks what it shows; in notebook 09 it also takes the chat page in the
IFrame. The PNGs have 32 colours (about 40 KB each). Needs Chromium (``/usr/bin/chromium``, or
``CHATBOT_CHROMIUM``); takes about two minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "docs" / "screenshots"


def main() -> int:
    env = {**os.environ, "CHATBOT_SCREENSHOTS": "1"}
    command = [sys.executable, "-m", "pytest", "tests/test_jupyterlab.py", "-q"]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    shots = sorted(FOLDER.glob("*.png"))
    for shot in shots:
        print(f"{shot.relative_to(ROOT)}: {shot.stat().st_size / 1024:.0f} KB")
    print(f"{len(shots)} screenshots, {sum(s.stat().st_size for s in shots) / 1024:.0f} KB in all")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
