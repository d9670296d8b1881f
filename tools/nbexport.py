"""Write the `chatbot` package from the notebooks, or check that it is in sync.

    python tools/nbexport.py            # write chatbot/ from notebooks/*.ipynb
    python tools/nbexport.py --check    # exit 1 and show a diff if chatbot/ has drifted

A code cell whose first line is ``#| export NAME`` is appended, in notebook order, to the module
NAME: a dotted name is a module in a subpackage (``#| export brains.eliza`` writes
``chatbot/brains/eliza.py``). Each block starts with a ``# %%`` line naming the notebook and the
code cell it came from (``code cell 12`` is ``[12]`` after Run All), so a traceback leads back to
the cell. The first exported cell of a module starts with the module's docstring and its
``__all__``; every module comes from one notebook.

A class grows across cells: a later exported cell whose only statement is ``class Hub(Hub):``
continues the class ``Hub`` defined earlier in the same module. In the kernel that makes a
subclass with the same name; here its body is merged into the original class, so the module
has one plain ``class Hub``.

``chatbot/__init__.py`` re-exports the names in :data:`PUBLIC` lazily (each is imported the
first time it is used, so ``import chatbot`` loads no submodule and no optional dependency);
each subpackage gets an ``__init__.py`` with its docstring from :data:`SUBPACKAGES`, and
``chatbot/__main__.py`` calls ``chatbot.cli.main``.

Only the standard library is used, so the check runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PACKAGE = ROOT / "chatbot"
DIRECTIVE = "#| export "
COMMAND = "python tools/nbexport.py"
GENERATED = "# Generated "
MODULE_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*")

SUBPACKAGES = {
    "brains": "How replies are made: the Brain interface and the brains that ship (notebook 03).",
    "server": (
        "The server: a plain-text WebSocket server with seams (notebook 02), the JSON protocol, "
        "its limits and the hub (05), the page and the finished server (06)."
    ),
    "storage": (
        "Where sessions and messages are kept: one interface (base), SQLite (notebook 04) and "
        "Redis for several processes (08)."
    ),
    "workshop": (
        "Helpers for the workshop itself: exercise checkers (notebook 01), the servers running in "
        "this kernel (02, 09) and the machine check (09)."
    ),
}
"""The subpackages, each with the docstring of its generated ``__init__.py``."""

PUBLIC = {
    # The server, in a notebook or a script
    "serve": "server.app",
    "Chatbot": "server.app",
    "ChatServer": "server.base",
    "echo": "server.base",
    "start_background": "workshop.background",
    "stop_background": "workshop.background",
    "background_servers": "workshop.background",
    "launch": "workshop.launch",
    "stop_launched": "workshop.launch",
    "DEFAULT_HOST": "defaults",
    "DEFAULT_PORT": "defaults",
    "PROTOCOL": "server.protocol",
    # Brains: the interface, your own function as a brain, the ones that ship
    "Brain": "brains.base",
    "Conversation": "brains.base",
    "Turn": "brains.base",
    "as_brain": "brains.base",
    "load_brain": "brains.base",
    "AssistantBrain": "brains.assistant",
    "ElizaBrain": "brains.eliza",
    "FaqBrain": "brains.faq",
    "LlmBrain": "brains.llm",
    "RulesBrain": "brains.rules",
    # What a server is made of
    "EventLog": "events",
    "Limits": "server.limits",
    "Store": "storage.sqlite",
    "LagMonitor": "lag",
    # Errors
    "ChatbotError": "errors",
    "PortInUseError": "errors",
}
"""The names ``chatbot`` itself offers: the ones the notebooks and the README use. Everything
else is reached through its module (``chatbot.server.hub.Hub``). Each name maps to the module
that defines it (a name may be in several modules' ``__all__``: ``serve`` is notebook 02's plain
server in ``server.base`` and the finished one in ``server.app``)."""


class ExportError(Exception):
    """A notebook asks for something the exporter cannot write."""


@dataclass
class Block:
    """One exported cell: where it came from and its code."""

    module: str
    notebook: str
    cell: int  # the code cell's number: [cell] in JupyterLab after Run All
    cell_id: str
    source: str

    @property
    def marker(self) -> str:
        return f"# %% notebooks/{self.notebook}, code cell {self.cell} (id {self.cell_id})"


def exported_cells(notebook: Path) -> list[Block]:
    """Return every exported code cell of ``notebook``, in order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = []
    code_cells = 0
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        code_cells += 1
        source = "".join(cell["source"])
        first, _, rest = source.partition("\n")
        if not first.startswith(DIRECTIVE):
            continue
        module = first[len(DIRECTIVE) :].strip()
        if not MODULE_NAME.fullmatch(module):
            raise ExportError(
                f"{notebook.name}, cell {index}: expected '#| export MODULE' with a module name "
                f"such as 'server.hub', got {first!r}"
            )
        cell_id = str(cell.get("id", index))
        found.append(Block(module, notebook.name, code_cells, cell_id, rest.strip("\n")))
    return found


def continued_class(block: Block) -> tuple[str, str] | None:
    """Return ``(name, body)`` if ``block`` continues a class (``class Name(Name):``)."""
    try:
        tree = ast.parse(block.source)
    except SyntaxError as exc:
        raise ExportError(f"{block.notebook}, code cell {block.cell}: {exc}") from exc
    if len(tree.body) != 1 or not isinstance(node := tree.body[0], ast.ClassDef):
        return None
    bases = [ast.unparse(base) for base in node.bases]
    if bases != [node.name] or node.keywords or node.decorator_list:
        return None
    lines = block.source.splitlines()
    start = node.body[0].lineno - 1
    if node.body and isinstance(node.body[0], ast.Expr | ast.FunctionDef | ast.AsyncFunctionDef):
        decorated = getattr(node.body[0], "decorator_list", [])
        if decorated:
            start = decorated[0].lineno - 1
    # Comments between the class line and the first statement belong to the body too.
    while start > node.lineno and lines[start - 1].strip().startswith("#"):
        start -= 1
    return node.name, "\n".join(lines[start:])


def merge(blocks: list[Block]) -> str:
    """Return a module's text from its blocks, continuing classes where a block asks to."""
    chunks: list[list[str]] = []  # each chunk: lines of one top-level block
    for block in blocks:
        continued = continued_class(block)
        if continued is None:
            chunks.append([block.marker, *block.source.splitlines()])
            continue
        name, body = continued
        for chunk in reversed(chunks):
            tree = ast.parse("\n".join(chunk))
            found = [
                node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name
            ]
            if found:
                end = found[-1].end_lineno
                assert end is not None
                chunk[end:end] = ["", "    " + block.marker, *body.splitlines()]
                break
        else:
            raise ExportError(
                f"{block.notebook}, code cell {block.cell}: 'class {name}({name}):' continues a "
                f"class, but no earlier cell exporting {block.module} defines class {name}"
            )
    return "\n\n\n".join("\n".join(chunk) for chunk in chunks)


def module_path(module: str) -> Path:
    parts = module.split(".")
    if module in SUBPACKAGES:
        return PACKAGE / module / "__init__.py"
    return PACKAGE.joinpath(*parts[:-1], parts[-1] + ".py")


def render() -> dict[Path, str]:
    """Return the text of every generated file, keyed by its path."""
    blocks: dict[str, list[Block]] = {}
    origin: dict[str, str] = {}
    for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        for block in exported_cells(notebook):
            where = f"notebooks/{notebook.name}"
            if origin.setdefault(block.module, where) != where:
                raise ExportError(
                    f"module {block.module!r} is exported from both {origin[block.module]} and "
                    f"{where}; export each module from one notebook only"
                )
            blocks.setdefault(block.module, []).append(block)

    files: dict[Path, str] = {}
    public: dict[str, list[str]] = {}
    for module, parts in blocks.items():
        package = module.rpartition(".")[0]
        if package and package not in SUBPACKAGES:
            raise ExportError(
                f"{origin[module]} exports {module!r}, but {package!r} is not a subpackage; "
                f"add it to SUBPACKAGES in tools/nbexport.py with its docstring"
            )
        header = (
            f"{GENERATED}from {origin[module]} by `{COMMAND}`.\n"
            "# Do not edit this file: edit the notebook, then run that command again.\n"
        )
        text = header + "\n" + merge(parts) + "\n"
        files[module_path(module)] = text
        public[module] = module_all(module, text)
    for package, doc in SUBPACKAGES.items():
        files.setdefault(
            module_path(package),
            f"{GENERATED}by `{COMMAND}`.\n"
            "# Do not edit this file: its docstring is in tools/nbexport.py.\n"
            f'"""{_docstring(doc)}"""\n',
        )
    files[PACKAGE / "__init__.py"] = render_init(public)
    if "cli" in blocks:
        # Not a notebook cell: in a kernel `__name__ == "__main__"` is true, so running such a
        # cell would start the command line inside the notebook.
        files[PACKAGE / "__main__.py"] = (
            f"{GENERATED}by `{COMMAND}`; the command line is in chatbot/cli.py.\n"
            '"""``python -m chatbot``: serve the chatbot (see :mod:`chatbot.cli`)."""\n\n'
            "import sys\n\nfrom chatbot.cli import main\n\n"
            'if __name__ == "__main__":\n    sys.exit(main())\n'
        )
    return files


def _docstring(text: str) -> str:
    # One line if it fits, else wrapped with the closing quotes on their own line (ruff's way).
    lines = textwrap.wrap(text, 94)
    return lines[0] if len(lines) == 1 else "\n".join(lines) + "\n"


def render_init(public: dict[str, list[str]]) -> str:
    """Return ``chatbot/__init__.py``: the names in :data:`PUBLIC`, imported when first used."""
    missing = [f"{n} in {m}" for n, m in PUBLIC.items() if n not in public.get(m, [])]
    if missing:
        raise ExportError(
            f"PUBLIC in tools/nbexport.py names {', '.join(missing)}: not in that module's __all__"
        )
    by_module: dict[str, list[str]] = {}
    for name, module in PUBLIC.items():
        by_module.setdefault(module, []).append(name)
    lines = [
        f"{GENERATED}by `{COMMAND}` from PUBLIC in that file.",
        "# Do not edit this file: edit the list there, then run that command again.",
        '"""Real-time chatbots with asyncio: the package built in the workshop notebooks.',
        "",
        "The names below are imported the first time they are used: ``import chatbot`` alone loads",
        "no submodule. Everything else lives in the subpackages: ``chatbot.brains``,",
        "``chatbot.server``, ``chatbot.storage`` and ``chatbot.workshop``.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import importlib",
        "from typing import TYPE_CHECKING, Any",
        "",
        "if TYPE_CHECKING:",
    ]
    for module in sorted(by_module):
        names = sorted(by_module[module], key=_by_type)
        line = f"    from chatbot.{module} import {', '.join(names)}"
        if len(line) <= 100:
            lines.append(line)
        else:
            lines += [f"    from chatbot.{module} import (", *[f"        {n}," for n in names]]
            lines.append("    )")
    lines += ["", "__all__ = ["]
    lines += [f'    "{name}",' for name in sorted(PUBLIC, key=_all_order)]
    lines += ["]", "", "_HOMES = {"]
    lines += [f'    "{name}": "chatbot.{PUBLIC[name]}",' for name in sorted(PUBLIC, key=_all_order)]
    lines += [
        "}",
        "",
        "",
        "def __getattr__(name: str) -> Any:",
        "    # PEP 562: called only for names not yet in this module's namespace.",
        "    home = _HOMES.get(name)",
        "    if home is None:",
        "        raise AttributeError(f\"module 'chatbot' has no attribute {name!r}\")",
        "    value = getattr(importlib.import_module(home), name)",
        "    globals()[name] = value  # the next use is a plain attribute look-up",
        "    return value",
        "",
        "",
        "def __dir__() -> list[str]:",
        "    return sorted({*globals(), *__all__})",
        "",
    ]
    return "\n".join(lines)


def _by_type(name: str) -> tuple[bool, bool, str]:
    # Constants, then classes, then functions, ignoring case: the order of ruff's isort.
    return (not name.isupper(), not name[0].isupper(), name.lower())


def _all_order(name: str) -> tuple[bool, bool, str]:
    # The same groups, case-sensitive within them: the order of ruff's RUF022 for __all__.
    return (not name.isupper(), not name[0].isupper(), name)


def module_all(module: str, text: str) -> list[str]:
    """Return the names in ``__all__`` of a generated module (an empty list if it has none):
    its assignment, and the lists added to it (``__all__ += [...]``)."""
    names: list[str] = []
    for node in ast.parse(text, filename=f"chatbot/{module}.py").body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            targets = [node.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
            value = ast.literal_eval(node.value)
            if not isinstance(value, list | tuple):
                raise ExportError(f"chatbot/{module}.py: __all__ must be a list of names")
            names.extend(value)
    return names


def stale_files(files: dict[Path, str]) -> list[Path]:
    """Return Python files in the package that no notebook generates any more."""
    return sorted(path for path in PACKAGE.rglob("*.py") if path not in files)


def check(files: dict[Path, str]) -> int:
    problems = 0
    for path, text in sorted(files.items()):
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            problems += 1
            name = str(path.relative_to(ROOT))
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"{name} (in the package)",
                    f"{name} (from the notebooks)",
                )
            )
    for path in stale_files(files):
        problems += 1
        print(f"{path.relative_to(ROOT)} is not generated by any notebook")
    if problems:
        print(
            f"\nchatbot/ and the notebooks are not in sync ({problems} file(s)). "
            f"Edit the notebooks, not chatbot/, then run `{COMMAND}`."
        )
        return 1
    print("chatbot/ is in sync with the notebooks.")
    return 0


def write(files: dict[Path, str]) -> int:
    for path in stale_files(files):
        # Remove only what an earlier export wrote; a hand-written file is work in progress.
        if path.read_text(encoding="utf-8").startswith(GENERATED):
            path.unlink()
            print(f"removed {path.relative_to(ROOT)}")
            if path.parent != PACKAGE and not any(path.parent.glob("*.py")):
                for leftover in path.parent.glob("__pycache__/*"):
                    leftover.unlink()
                for folder in (path.parent / "__pycache__", path.parent):
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
        else:
            print(f"left {path.relative_to(ROOT)}: written by hand, not by any notebook")
    for path, text in sorted(files.items()):
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if chatbot/ has drifted"
    )
    args = parser.parse_args(argv)
    try:
        files = render()
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return check(files) if args.check else write(files)


if __name__ == "__main__":
    sys.exit(main())
