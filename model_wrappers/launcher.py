"""The launcher check: ``accelerate launch`` asked for several processes but started one.

``accelerate launch --num_processes N`` on a machine without GPUs starts one process unless
``--multi_gpu`` is given; :func:`launcher_shortfall` recognises that from the environment the
launcher sets, so the wrapper can warn instead of silently running one process.
"""

from __future__ import annotations

from collections.abc import Mapping


def launcher_shortfall(environ: Mapping[str, str]) -> str | None:
    """A warning when ``accelerate launch`` was asked for several processes but started only this one.

    accelerate's simple (single-process) launcher sets ``MASTER_ADDR``/``MASTER_PORT`` only when
    ``--num_processes`` > 1 (or several machines) were requested, and never ``WORLD_SIZE``; its
    multi-process launcher (torchrun) sets ``WORLD_SIZE``. So launcher variables plus
    ``MASTER_ADDR`` without ``WORLD_SIZE`` mean that the extra processes were never started.
    """
    launched_by_accelerate = "ACCELERATE_DYNAMO_BACKEND" in environ or "ACCELERATE_MIXED_PRECISION" in environ
    if not launched_by_accelerate or "WORLD_SIZE" in environ or "MASTER_ADDR" not in environ:
        return None
    return (
        "accelerate launch was asked for several processes, but it started only this one: without GPUs, "
        "accelerate starts several processes only with --multi_gpu (accelerate launch --multi_gpu "
        "--num_processes N -m lmms_eval ...). This run continues as ONE process over all documents."
    )
