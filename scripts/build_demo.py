"""Build the embedded default for ``make demo``: a tiny LLaVA-1.5 checkpoint and a local data mirror.

Until the project ships a small model trained on synthetic Controlled-style images, the default
run uses a random tiny checkpoint: it exercises the whole path a real run takes (lmms-eval CLI,
task loading from ADAPTVIS_DATA_DIR, images from ADAPTVIS_IMAGE_ROOT, the AdaptVis intervention,
metrics, samples log and trace) but its answers, and hence its scores, mean nothing.

    python scripts/build_demo.py .demo     # writes .demo/llava-1.5-tiny, .demo/data, .demo/images
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaptvis_tasks.synthetic import write_mirror
from model_wrappers.tiny_checkpoints import build_tiny_llava

DEMO_ROWS = {"Controlled_A": 412}
"""Controlled_A at its published size: 103 object pairs x 4 relations."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    args = parser.parse_args()
    checkpoint = args.root / "llava-1.5-tiny"
    if not (checkpoint / "config.json").exists():
        build_tiny_llava(checkpoint)
    if not (args.root / "data" / "Controlled_A" / "test.jsonl").exists():
        write_mirror(args.root, DEMO_ROWS, seed=0)
    print(f"demo checkpoint: {checkpoint}\ndemo data: {args.root / 'data'} (images: {args.root / 'images'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
