"""Check that this suite feeds LLaVA-1.5 the authors' token ids for every prompt of a folder of JSONL files.

The authors' prompt files (``prompts/*.jsonl`` of shiqichen17/AdaptVis: six WhatsUp files and
``VSR_with_answer.jsonl``) cannot be redistributed, so CI checks a corpus of its own
(``tests/model/test_token_parity.py``); this script runs the same check on the real files:

    python tests/support/tools/check_token_parity.py path/to/AdaptVis/prompts [--sentencepiece-model tokenizer.model]

For every row's ``question`` it compares, with the reference ids of ``tests/support/spm_reference.py``
(``[1] + enc(text before <image>) + [32000] + enc(text after)``, each segment with the dummy prefix):

* ``suite tokenizer``: the tokenizer ``llava_adaptvis`` loads (``model_wrappers.loading``);
* ``suite processor``: the full processor output with an image (runs of ``<image>`` collapsed);
* for information, what transformers 5.x gives without this suite's loader: ``AutoTokenizer``
  (``auto``; for a ``llava`` config transformers 5.23 picks ``TokenizersBackend``, which keeps
  ``tokenizer.json`` as it is) and ``LlamaTokenizer.from_pretrained`` (``LlamaTokenizer``; rebuilt
  with a Metaspace pre-tokenizer and, from ``legacy: false``, the dummy prefix on the first segment only).

Rows of a file named ``VSR*`` are also turned into the VSR zero-shot template the reference builds
(``User: <image>\\n Determine ... Answer with yes or no: {caption} Assistant:``) with the caption
``The {X} is {answer} the {Y}.`` made from the row, and checked the same way. With
``--sentencepiece-model`` the reference itself is cross-checked against the SentencePiece library.
The checkpoint used is a tiny random LLaVA-1.5 with the real Llama vocabulary in llava-hf's format
(``make test`` fetches the vocabulary; see ``tests/support/llama_vocabulary.py``). Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch
from PIL import Image

from adaptvis_tasks.prompts import format_vsr_llava15_prompt, vsr_bare_prompt
from model_wrappers.loading import load_checkpoint
from tests.support.llama_vocabulary import load_llama_vocabulary
from tests.support.spm_reference import SentencePieceBPE, collapse_image_runs, reference_ids
from tests.support.tiny_checkpoints import build_tiny_llava

_VSR_QUESTION = re.compile(r"Where (?:is|are) (?:the )?(?P<x>.+?) in relation to (?:the )?(?P<y>.+?)\?")


def read_prompts(path: Path) -> list[tuple[str, dict]]:
    """``(where, row)`` for every row; a row without a ``question`` string is an error naming it."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}:{number}: not JSON ({error}); expected one object per line") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise SystemExit(f"{path}:{number}: no 'question' string; expected the authors' prompt-file rows")
        rows.append((f"{path.name}:{number}", row))
    return rows


def vsr_zero_shot_prompt(row: dict, where: str) -> str:
    """The reference's VSR zero-shot prompt with a caption made from a ``VSR_with_answer`` row."""
    match = _VSR_QUESTION.search(row["question"])
    if match is None or not isinstance(row.get("answer"), str):
        raise SystemExit(f"{where}: cannot make a VSR caption from {row['question']!r} / {row.get('answer')!r}")
    return format_vsr_llava15_prompt(vsr_bare_prompt(f"The {match['x']} is {row['answer']} the {match['y']}."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of the authors' *.jsonl prompt files")
    parser.add_argument("--sentencepiece-model", type=Path, help="Llama tokenizer.model to cross-check the reference")
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"{args.folder}: no *.jsonl files; give the folder of the authors' prompt files")
    from transformers import AutoTokenizer, LlamaTokenizer

    vocabulary = load_llama_vocabulary()
    encoder = SentencePieceBPE(vocabulary)
    sentencepiece = None
    if args.sentencepiece_model is not None:
        import sentencepiece as spm

        sentencepiece = spm.SentencePieceProcessor(model_file=str(args.sentencepiece_model))
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = build_tiny_llava(Path(folder) / "llava", vocabulary=vocabulary)
        loaded = load_checkpoint(str(checkpoint), ("llava",), "llava_adaptvis", device=torch.device("cpu"))
        transformers5 = LlamaTokenizer.from_pretrained(str(checkpoint))
        auto = AutoTokenizer.from_pretrained(str(checkpoint))
    tokenizer, processor = loaded.processor.tokenizer, loaded.processor
    image = Image.new("RGB", (64, 48), (120, 80, 40))
    columns = ("prompts", "suite tokenizer", "suite processor", "auto", "LlamaTokenizer", "sentencepiece")
    print(f"{'file':<52}" + "".join(f"{c:>18}" for c in columns))
    totals = dict.fromkeys(columns, 0)
    failures = []
    for path in files:
        prompts = [(where, row["question"]) for where, row in read_prompts(path)]
        if path.name.startswith("VSR"):
            prompts += [(f"{w} (zero-shot template)", vsr_zero_shot_prompt(r, w)) for w, r in read_prompts(path)]
        counts = dict.fromkeys(columns, 0)
        for where, prompt in prompts:
            expected = reference_ids(encoder, prompt)
            counts["prompts"] += 1
            ours = tokenizer(prompt).input_ids
            counts["suite tokenizer"] += ours == expected
            full = processor(images=[image], text=[prompt], return_tensors="pt").input_ids[0].tolist()
            counts["suite processor"] += collapse_image_runs(full) == expected
            counts["LlamaTokenizer"] += transformers5(prompt).input_ids == expected
            counts["auto"] += auto(prompt).input_ids == expected
            if sentencepiece is not None:
                segments = prompt.split("<image>")
                spm_ids = [1]
                for index, segment in enumerate(segments):
                    spm_ids += ([32000] if index else []) + (sentencepiece.encode(segment) if segment else [])
                counts["sentencepiece"] += spm_ids == expected
            if ours != expected or collapse_image_runs(full) != expected:
                failures.append(f"{where}: {prompt!r}\n  expected {expected}\n  suite    {ours}")
        for column in columns:
            totals[column] += counts[column]
        print(f"{path.name:<52}" + "".join(_cell(counts, c, sentencepiece) for c in columns))
    print(f"{'total':<52}" + "".join(_cell(totals, c, sentencepiece) for c in columns))
    for failure in failures[:20]:
        print(failure)
    return 1 if failures else 0


def _cell(counts: dict, column: str, sentencepiece) -> str:
    if column == "prompts":
        return f"{counts['prompts']:>18}"
    if column == "sentencepiece" and sentencepiece is None:
        return f"{'-':>18}"
    text = f"{counts[column]}/{counts['prompts']}"
    return f"{text:>18}"


if __name__ == "__main__":
    sys.exit(main())
