"""An independent reference for the authors' LLaVA-1.5 token ids: a plain SentencePiece-BPE encoder.

Written for the tests from the algorithm, not from any tokenizer library:

1. the text gets the dummy prefix and its spaces become "▁" (``"▁" + text.replace(" ", "▁")``);
2. it is split into characters; a character missing from the vocabulary becomes its UTF-8 bytes
   ``<0xNN>`` (byte fallback; such pieces take part in no merge);
3. the adjacent pair whose merge has the highest priority (earliest in the merge list; leftmost
   on ties) is merged, repeatedly, until no adjacent pair has a merge.

The authors' rule (transformers 4.39.1 with llava-hf's ``tokenizer.json``, whose normalizer
prepends "▁" to every text segment) is that each text segment around ``<image>`` is encoded on
its own with the dummy prefix: ``ids = [1] + enc(before) + [32000] + enc(after)`` (an empty
segment contributes nothing). :func:`reference_ids` implements exactly that.
"""

from __future__ import annotations

from functools import cached_property

from tests.support.tiny_checkpoints import LLAVA_HF_IMAGE_TOKEN_ID, LlamaVocabulary

IMAGE = "<image>"
BOS_ID = 1


class SentencePieceBPE:
    """Greedy highest-priority-merge BPE over Llama pieces, with byte fallback."""

    def __init__(self, vocabulary: LlamaVocabulary) -> None:
        self.vocabulary = vocabulary

    @cached_property
    def ids(self) -> dict[str, int]:
        return {piece: index for index, piece in enumerate(self.vocabulary.pieces)}

    @cached_property
    def ranks(self) -> dict[tuple[str, str], int]:
        return {pair: rank for rank, pair in enumerate(self.vocabulary.merges)}

    def _symbols(self, text: str) -> list[str]:
        symbols: list[str] = []
        for char in text:
            if char in self.ids:
                symbols.append(char)
            else:
                symbols.extend(f"<0x{byte:02X}>" for byte in char.encode("utf-8"))
        return symbols

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as one segment with the dummy prefix (no BOS)."""
        if not text:
            return []
        symbols = self._symbols("▁" + text.replace(" ", "▁"))
        while len(symbols) > 1:
            best = None
            for position in range(len(symbols) - 1):
                rank = self.ranks.get((symbols[position], symbols[position + 1]))
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, position)
            if best is None:
                break
            _, position = best
            symbols[position : position + 2] = [symbols[position] + symbols[position + 1]]
        return [self.ids[symbol] for symbol in symbols]


def reference_ids(encoder: SentencePieceBPE, prompt: str) -> list[int]:
    """The authors' ids for a LLaVA-1.5 prompt: BOS, then each segment around ``<image>`` encoded separately."""
    ids = [BOS_ID]
    segments = prompt.split(IMAGE)
    for index, segment in enumerate(segments):
        if index:
            ids.append(LLAVA_HF_IMAGE_TOKEN_ID)
        ids.extend(encoder.encode(segment))
    return ids


def collapse_image_runs(ids: list[int]) -> list[int]:
    """Processor output with each run of ``<image>`` tokens (one per image feature) collapsed to one.

    transformers 5's processors expand ``<image>`` in the text to one token per image feature
    before tokenizing; transformers 4.39's LLaVA expanded it inside the model. Collapsing the run
    compares the two on the same footing.
    """
    out: list[int] = []
    for token in ids:
        if token == LLAVA_HF_IMAGE_TOKEN_ID and out and out[-1] == LLAVA_HF_IMAGE_TOKEN_ID:
            continue
        out.append(token)
    return out
