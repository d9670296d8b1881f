"""Execute notebooks in place, so their stored outputs are what a learner will see.

    python tools/run_notebooks.py                      # every notebook, in order
    python tools/run_notebooks.py notebooks/02_*.ipynb # some of them

Each notebook runs top to bottom in a fresh kernel started in notebooks/. A cell tagged
``raises-exception`` may fail; any other error stops with the cell that failed. Cell timings
are not recorded, so re-running a notebook changes only what really changed.
Run ``python tools/nbexport.py`` afterwards if you changed exported cells.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 120


def run(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.write(notebook, path)


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"running {path} ...", flush=True)
        run(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
