"""Record this suite's provenance in every lmms-eval results JSON (``results["adaptvis_eval"]``).

lmms-eval 0.7.3's results JSON holds ``config.model_args``, ``task_hashes`` (with
``--log_samples``), task ``versions`` and a ``git_hash``/``lmms_eval_version`` -- but the latter
come from ``git describe`` run in the folder *above lmms-eval's installed package*, i.e. whatever
repository happens to contain the virtual environment (or nothing), not lmms-eval's own version
nor this suite's. Package versions of transformers and torch are not recorded at all.

The least invasive fix: :func:`install_results_provenance` wraps lmms-eval's
``EvaluationTracker.save_results_aggregated`` (once; installed by the model entry point, like the
task-discovery hook) to add one key before the file is written::

    "adaptvis_eval": {"version": ..., "git_hash": ..., "lmms_eval": ..., "transformers": ..., "torch": ...}

Nothing else in the results changes. ``adaptvis table --leaderboard`` reads it.
"""

from __future__ import annotations

import functools
import json
import subprocess
from importlib import metadata
from pathlib import Path

_MARKER = "__adaptvis_provenance__"
DISTRIBUTION = "adaptvis-eval"


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def suite_git_hash() -> str | None:
    """This suite's commit: ``git rev-parse`` of a source checkout, else the pip VCS record, else None."""
    root = Path(__file__).resolve().parents[2]  # model_wrappers/lmms_plugin/provenance.py -> the repository
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            return out + ("-dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            return None
    try:
        direct_url = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if direct_url:
        return json.loads(direct_url).get("vcs_info", {}).get("commit_id")
    return None


def provenance() -> dict[str, str | None]:
    """Versions of this suite, its commit, and of lmms-eval, transformers and torch."""
    return {
        "version": _version(DISTRIBUTION),
        "git_hash": suite_git_hash(),
        "lmms_eval": _version("lmms_eval") or _version("lmms-eval"),
        "transformers": _version("transformers"),
        "torch": _version("torch"),
    }


def install_results_provenance() -> bool:
    """Make lmms-eval add ``adaptvis_eval`` to every results JSON it saves; idempotent."""
    from lmms_eval.loggers.evaluation_tracker import EvaluationTracker

    original = EvaluationTracker.save_results_aggregated
    if getattr(original, _MARKER, False):
        return True

    @functools.wraps(original)
    def save_results_aggregated(self, results, samples, datetime_str):
        results.setdefault("adaptvis_eval", provenance())
        return original(self, results, samples, datetime_str)

    setattr(save_results_aggregated, _MARKER, True)
    EvaluationTracker.save_results_aggregated = save_results_aggregated
    return True
