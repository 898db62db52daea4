"""``adaptvis``: one console command, a thin dispatcher over tools that each own one job.

Each sub-command lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int`` (the process exit code). Modules are imported only when their sub-command
runs, so model-free tools (tune, compare, table, curves, check, doctor) never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("adaptvis_tasks.doctor", "check that every dataset configuration and image is in place"),
    "tune": ("adaptvis_tasks.analysis.tune", "choose ScalingVis/AdaptVis coefficients from one sweep trace"),
    "compare": ("adaptvis_tasks.analysis.compare", "compare runs: deltas, paired significance, flipped documents"),
    "table": ("adaptvis_tasks.analysis.table", "the paper's Table 1 layout, or leaderboard rows with provenance"),
    "curves": ("adaptvis_tasks.analysis.curves", "accuracy and confidence per gold relation against alpha"),
    "attention": ("model_wrappers.analysis.attention", "attention maps over the image and image/text shares"),
    "norms": ("model_wrappers.analysis.norms", "vision- vs text-token embedding norms of a checkpoint (printed, PNG)"),
}
"""Sub-command -> (module with add_arguments/run, one-line help)."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each sub-command's options come from its module."""
    parser = argparse.ArgumentParser(
        prog="adaptvis",
        description="Tools of the adaptvis-eval suite (see each sub-command's --help).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        importlib.import_module(module_name).add_arguments(sub)
        sub.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS and not any(a in ("-h", "--help") for a in argv[:1]):
        # Build only the requested sub-command's parser, so other tools' imports are not paid for.
        module = importlib.import_module(COMMANDS[argv[0]][0])
        parser = argparse.ArgumentParser(prog=f"adaptvis {argv[0]}", description=COMMANDS[argv[0]][1])
        module.add_arguments(parser)
        return int(module.run(parser.parse_args(argv[1:])))
    args = build_parser().parse_args(argv)
    return int(importlib.import_module(args._module).run(args))


if __name__ == "__main__":
    raise SystemExit(main())
