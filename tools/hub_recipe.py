"""Write the JupyterHub recipe that tests/test_jupyterhub.py runs into docs/instructors.md.

    python tools/hub_recipe.py          # rewrite the recipe's block in the guide
    python tools/hub_recipe.py --check  # exit status 1 if the guide shows another recipe

The recipe is ``RECIPE`` in ``tests/hub_recipe.py``: the ``jupyterhub_config.py`` the hub test
starts JupyterHub with. The guide shows it between two HTML comments (:data:`BEGIN`,
:data:`END`), so the guide cannot drift from what was tested; ``tests/test_jupyterhub.py`` checks
it is in sync.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "instructors.md"
BEGIN = (
    "<!-- hub recipe: written by `python tools/hub_recipe.py` from tests/hub_recipe.py; "
    "edit it there -->"
)
END = "<!-- end of the hub recipe -->"


def recipe() -> str:
    sys.path.insert(0, str(ROOT))
    try:
        from tests.hub_recipe import RECIPE
    finally:
        sys.path.remove(str(ROOT))
    return RECIPE


def block(text: str) -> str:
    """The guide's block for a recipe: the markers around a Python code block."""
    return f"{BEGIN}\n```python\n{text}```\n{END}"


def with_recipe(guide: str, text: str) -> str:
    """Return ``guide`` with its recipe block replaced by one showing ``text``."""
    start, end = guide.find(BEGIN), guide.find(END)
    if start < 0 or end < start:
        raise SystemExit(
            f"{GUIDE.relative_to(ROOT)} has no recipe block: put the two lines\n{BEGIN}\n{END}\n"
            "where the recipe goes, then run this again"
        )
    return guide[:start] + block(text) + guide[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is in sync")
    args = parser.parse_args(argv)
    guide = GUIDE.read_text()
    updated = with_recipe(guide, recipe())
    if args.check:
        if updated != guide:
            print(
                f"{GUIDE.relative_to(ROOT)} does not show tests/hub_recipe.py's RECIPE: run "
                "`python tools/hub_recipe.py`"
            )
            return 1
        print(f"{GUIDE.relative_to(ROOT)} shows the tested recipe.")
        return 0
    if updated != guide:
        GUIDE.write_text(updated)
        print(f"wrote the recipe into {GUIDE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
