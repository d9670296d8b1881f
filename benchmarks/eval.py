"""How well each brain answers what learners type: ``python benchmarks/eval.py``.

The questions are in ``benchmarks/eval_*.txt``: learner questions with the FAQ entry that
answers each (or none), split into a development part (``dev``: tune on it) and a held-out part
(``heldout``: only score it), and two-turn follow-ups in the same two parts. See
:mod:`chatbot.brains.evaluation` for how a reply is scored.

For each brain and part it prints top-1 (the right entry answered), top-3 (answered, or offered
among the "Did you mean" topics), how many in-domain questions ELIZA answered, and the misses.
The misses of held-out parts are counted but not listed unless ``--show-heldout-misses``: whoever
tunes the brain should not read them.

Examples::

    python benchmarks/eval.py                        # assistant and faq, every part
    python benchmarks/eval.py --brains assistant --parts dev,followups-dev
    python benchmarks/eval.py --smoke                # a few questions per part: what CI runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatbot.brains.base import load_brain
from chatbot.brains.evaluation import Score, evaluate, read_questions
from chatbot.brains.faq import KnowledgeBase

__all__ = ["PARTS", "main"]

HERE = Path(__file__).resolve().parent
PARTS = {
    "dev": HERE / "eval_dev.txt",
    "heldout": HERE / "eval_heldout.txt",
    "followups-dev": HERE / "eval_followups_dev.txt",
    "followups-heldout": HERE / "eval_followups_heldout.txt",
    "heldout2": HERE / "eval_heldout2.txt",  # a second held-out part, written in session 7
    "followups-heldout2": HERE / "eval_followups_heldout2.txt",
    "heldout3": HERE / "eval_heldout3.txt",  # a third, written in session 9 (with small talk)
    "followups-heldout3": HERE / "eval_followups_heldout3.txt",
}
"""The parts of the evaluation and their files."""

BRAINS = ("assistant", "faq")
SMOKE_QUESTIONS = 6


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``python benchmarks/eval.py``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/eval.py",
        description="Top-1, top-3 and misses of each brain on learner questions.",
    )
    parser.add_argument(
        "--brains", default=",".join(BRAINS), help="brains, comma-separated (%(default)s)"
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="parts, comma-separated (%(default)s)"
    )
    parser.add_argument("--smoke", action="store_true", help="a few questions per part")
    parser.add_argument(
        "--show-heldout-misses", action="store_true", help="list the held-out misses too"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser


def _print_score(brain: str, part: str, score: Score, *, show_misses: bool) -> None:
    print(
        f"{brain:<10} {part:<18} {score.total:>4} {score.top1_percent:>6.1f} "
        f"{score.top3_percent:>6.1f} {score.eliza_in_domain:>6}"
    )
    if not show_misses:
        if score.misses:
            print(f"    ({len(score.misses)} misses not listed: held-out)")
        return
    for miss in score.misses:
        print(f"    miss: {miss.question.text!r}")
        print(f"          wanted {miss.question.expected!r}, got {miss.got!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Score each brain on each part, print the table and the misses; return the exit status."""
    args = build_parser().parse_args(argv)
    brains = [name.strip() for name in args.brains.split(",") if name.strip()]
    parts = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        print(f"error: unknown part(s) {unknown}; expected some of {list(PARTS)}", file=sys.stderr)
        return 2
    knowledge = KnowledgeBase.load()
    figures: dict[str, Any] = {}
    print(f"{'brain':<10} {'part':<18} {'n':>4} {'top-1':>6} {'top-3':>6} {'eliza':>6}")
    for brain_name in brains:
        for part in parts:
            questions = read_questions(PARTS[part], knowledge)
            if args.smoke:
                questions = questions[:SMOKE_QUESTIONS]
            brain = load_brain(brain_name)  # a fresh brain per part: no memory carried over
            score = asyncio.run(evaluate(brain, questions, knowledge))
            figures.setdefault(brain_name, {})[part] = score.figures()
            show = args.show_heldout_misses or "heldout" not in part
            _print_score(brain_name, part, score, show_misses=show)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
