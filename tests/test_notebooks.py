"""The notebooks as files: numbered, committed with their outputs, their exports silent.

nbval (collected from notebooks/ by the pytest configuration) runs each notebook once in a fresh
kernel and compares the outputs; tests/test_jupyterlab.py runs each twice in one kernel (Run All,
then Run All again with no restart), as a learner who re-runs cells does.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_numbered_from_01_without_gaps() -> None:
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_with_its_outputs(path: Path) -> None:
    # nbval compares only cells that were executed in the stored notebook: a notebook saved
    # without running it would pass without checking anything. Run tools/run_notebooks.py.
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    unrun = [n for n, cell in enumerate(code) if cell.execution_count is None]
    assert not unrun, f"{path.name}: code cells {unrun} have no stored run"
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_exported_cells_show_nothing(path: Path) -> None:
    # A cell that defines part of the package shows no output: a constant's docstring left as
    # the cell's last line is displayed by Jupyter, and reads as a stray string to a learner.
    notebook = nbformat.read(path, as_version=4)
    shown = [
        f"code cell {n}: {cell.outputs[0].get('data', {}).get('text/plain', '')[:60]!r}"
        for n, cell in enumerate(c for c in notebook.cells if c.cell_type == "code")
        if cell.source.startswith("#| export") and cell.outputs
    ]
    assert not shown, f"{path.name}: exported cells with an output: {shown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_the_workshop_structure(path: Path) -> None:
    # Where we are, what you'll learn, a diagram, an exercise that checks the learner's answer
    # with a solution to reveal, and a summary: what an instructor expects of every part.
    cells = nbformat.read(path, as_version=4).cells
    markdown = ["".join(cell.source) for cell in cells if cell.cell_type == "markdown"]
    code = ["".join(cell.source) for cell in cells if cell.cell_type == "code"]
    number = int(path.name[:2])
    assert f"**Part {number} of {len(NOTEBOOKS)}**" in markdown[0]
    assert re.search(r"\b[Yy]ou( will|'ll learn)\b", markdown[0]), (
        "the first cell says what you will learn"
    )
    assert any("```mermaid" in text for text in markdown), "a diagram of the flow"
    exercise = next(
        n for n, text in enumerate(markdown) if re.search(r"^## .*Exercise", text, re.M)
    )
    assert any("<details>" in text for text in markdown[exercise:]), "a solution to reveal"
    assert any("Well done" in text and "Not yet" in text for text in code), "a checker cell"
    assert any(re.search(r"^## Summary", text, re.M) for text in markdown)


def _code_cells() -> list[tuple[int, str, int]]:
    sizes = []
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        for index, cell in enumerate(cells):
            if cell.cell_type == "code":
                sizes.append((len(cell.source.splitlines()), path.name, index))
    return sizes


def test_code_cells_are_small_enough_to_read_aloud() -> None:
    # A workshop is taught cell by cell: no wall of code, and nearly every cell fits on a screen.
    sizes = _code_cells()
    too_big = [f"{name} cell {index}: {lines} lines" for lines, name, index in sizes if lines > 80]
    assert not too_big, "code cells over 80 lines: " + ", ".join(too_big)
    small = sum(lines <= 40 for lines, _, _ in sizes)
    assert small >= 0.9 * len(sizes), f"only {small} of {len(sizes)} code cells have <= 40 lines"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_exported_definition_is_explained_before_the_next_one(path: Path) -> None:
    # nbdev's habit: a definition, then why (markdown), then a use. Two exported cells in a row
    # at most (a module's header and its first definition, say).
    cells = nbformat.read(path, as_version=4).cells
    run = 0
    for index, cell in enumerate(cells):
        exported = cell.cell_type == "code" and cell.source.startswith("#| export ")
        run = run + 1 if exported else 0
        assert run <= 2, f"{path.name} cell {index}: a third exported cell with no words between"


_EXERCISE = re.compile(r"^##+ .*Exercise", re.M)


def _exercises(path: Path) -> int:
    """How many exercises a notebook has (headings with "Exercise": the core one, and any in
    an optional section, such as notebook 03's 12.3)."""
    cells = nbformat.read(path, as_version=4).cells
    return sum(
        1 for cell in cells if cell.cell_type == "markdown" and _EXERCISE.search(cell.source)
    )


def _exercise(cells: list[nbformat.NotebookNode], number: int = 0) -> tuple[int, str, int]:
    """Return (the learner's cell, the solution's code, the checking cell) of a notebook's
    exercise ``number`` (0: the first)."""
    heading = [
        n
        for n, cell in enumerate(cells)
        if cell.cell_type == "markdown" and _EXERCISE.search(cell.source)
    ][number]
    details = next(
        cell.source
        for cell in cells[heading:]
        if cell.cell_type == "markdown" and "<details>" in cell.source
    )
    solution = re.search(r"```python\n(.*?)```", details, re.S)
    assert solution, "the solution shows its code in a ```python block"
    code = solution.group(1)
    names = re.findall(r"^(?:async def|def|class) (\w+)", code, re.M)
    learner = next(
        n
        for n, cell in enumerate(cells)
        if n > heading
        and cell.cell_type == "code"
        and any(
            re.search(rf"^(?:async def|def|class) {name}\b", cell.source, re.M) for name in names
        )
    )
    checker = next(
        n
        for n, cell in enumerate(cells)
        if n > learner and cell.cell_type == "code" and "Well done" in cell.source
    )
    return learner, code, checker


def _execute(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Run ``notebook`` in a fresh kernel, in the folder of ``path`` (as JupyterLab would)."""
    resources = {"metadata": {"path": str(path.parent)}}
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources=resources).execute()


def _printed(cell: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if "text" in output)


EXERCISES = [(path, number) for path in NOTEBOOKS for number in range(_exercises(path))]


@pytest.mark.notebooks
@pytest.mark.parametrize(
    ("path", "number"),
    EXERCISES,
    ids=[f"{path.name}-{number + 1}" for path, number in EXERCISES],
)
def test_the_solution_passes_the_exercise_checker(path: Path, number: int) -> None:
    # The stored notebook shows the learner's starting point ("Not yet"); the solution, put in
    # its place, must get "Well done" from the same checker.
    notebook = nbformat.read(path, as_version=4)
    learner, solution, checker = _exercise(notebook.cells, number)
    # The solution comes after the learner's starting point, in the same cell: it replaces the
    # definitions, and keeps whatever else the cell sets up.
    notebook.cells[learner].source += "\n\n" + solution
    notebook.cells = notebook.cells[: checker + 1]
    _execute(notebook, path)
    printed = _printed(notebook.cells[checker])
    assert "Well done" in printed, printed
    stored = nbformat.read(path, as_version=4).cells[checker].outputs
    assert "Not yet" in "".join(output.get("text", "") for output in stored)


# A learner's entry for notebook 03's exercise 12.3, not the solution's: it answers the four
# queue questions, and moves development questions that sat on a threshold to other entries
# (adding an entry changes every word's idf), none to itself.
LEARNERS_QUEUE_ENTRY = """
## How do I hand work between tasks with a queue?
Also: asyncio.Queue example
Also: producer consumer queue
Also: my consumer waits forever on get
Also: worker tasks reading from a queue

`asyncio.Queue`: put in one task, get in another; get waits while the queue is empty.
"""


@pytest.mark.notebooks
def test_the_knowledge_exercise_holds_against_an_entry_only_what_it_takes() -> None:
    path = ROOT / "notebooks" / "03_response-generation.ipynb"
    notebook = nbformat.read(path, as_version=4)
    cells = notebook.cells
    learner = next(n for n, c in enumerate(cells) if "QUEUE_QUESTIONS = [" in c.source)
    checker = next(n for n, c in enumerate(cells) if n > learner and "Well done" in c.source)
    define = "def course_entries() -> str:\n    return {!r}\n"
    cells[learner].source += "\n\n\n" + define.format(LEARNERS_QUEUE_ENTRY)
    # Then an entry that takes development questions for itself, checked the same way.
    greedy = LEARNERS_QUEUE_ENTRY.replace(
        "Also: asyncio.Queue example", "Also: minimal websocket server python"
    )
    again = nbformat.v4.new_code_cell(cells[checker].source)
    greedy_cell = nbformat.v4.new_code_cell(define.format(greedy))
    notebook.cells = [*cells[: checker + 1], greedy_cell, again]
    _execute(notebook, path)
    printed = _printed(cells[checker])
    assert "queue questions: 4 of 4 answered from your entry" in printed, printed
    # Questions moved to other entries: the checker says so, and the entry still passes.
    assert re.search(r"\(\d+ other development question\(s\) changed answer", printed), printed
    assert "Well done" in printed, printed
    printed = _printed(again)
    assert "Not yet" in printed, printed
    assert "  your entry took 'minimal websocket server python'" in printed, printed


def _sections(path: Path) -> dict[int, tuple[int, int]]:
    """Each numbered section ("## 3. ...") of a notebook: its first and last code cell, counted
    from 1 as JupyterLab shows them after Run All; a section ends where the next "## " begins."""
    starts: list[tuple[int | None, int]] = []  # (section, code cells before its heading)
    code = 0
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            code += 1
            continue
        for line in cell.source.splitlines():
            if line.startswith("## "):
                number = re.match(r"## (\d+)\.", line)
                starts.append((int(number.group(1)) if number else None, code))
    ends = [before for _, before in starts[1:]] + [code]
    starts[0] = (starts[0][0], 0)  # the cells above the first heading belong to the first section
    return {
        number: (before + 1, end)
        for (number, before), end in zip(starts, ends, strict=True)
        if number is not None
    }


def test_the_instructors_guide_gives_each_sections_code_cells() -> None:
    # docs/instructors.md tells an instructor which code cells a section spans ("9 ELIZA
    # [43]-[81]"); a cell added to a notebook moves every number after it.
    cells = re.compile(r"\[(\d+)\](?:-\[(\d+)\])?")  # "[43]-[81]", or "[55]" alone
    rows = [
        line.split("|")
        for line in (ROOT / "docs" / "instructors.md").read_text().splitlines()
        if re.match(r"\| \d\d ", line)
    ]
    assert len(rows) == len(NOTEBOOKS)
    wrong = []
    for row in rows:
        number = row[1].split()[0]
        sections = _sections(next(p for p in NOTEBOOKS if p.name.startswith(number)))
        core, optional = row[2].split(":", 1), row[4]  # "1-8 and 12 (exercise): [1]-[23], [49]"
        groups = re.findall(r"(\d+)(?:-(\d+))?", core[0])
        claims = list(zip(groups, cells.findall(core[1]), strict=True))
        claims += [
            ((part.split()[0], ""), cells.findall(part)[0])
            for part in optional.split(";")
            if "[" in part  # not "(none)"
        ]
        for (first, last), (start, end) in claims:
            said = (int(start), int(end or start))
            real = (sections[int(first)][0], sections[int(last or first)][1])
            if said != real:
                wrong.append(
                    f"notebook {number}, sections {first}-{last or first}: {said}, not {real}"
                )
    assert not wrong, wrong
