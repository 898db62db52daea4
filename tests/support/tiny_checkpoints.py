"""Tiny random LLaVA-1.5, LLaVA-1.6 and Qwen2-VL checkpoints, built offline from configs.

Real 7B checkpoints cannot be fetched on machines without the Hugging Face hub, yet every code
path that loads them (``from_pretrained`` of model, processor and tokenizer) must still run.
These builders write complete checkpoint folders -- weights, config, a locally trained
byte-level BPE tokenizer, image processor and chat template -- that load through exactly the
same ``AutoConfig`` / ``AutoProcessor`` / ``*ForConditionalGeneration.from_pretrained`` calls
as the real ones. They serve the tests and the benchmark; they are test support and do not ship in the wheel.

The weights are random (seeded), so answers are meaningless; only shapes and mechanics are real.

LLaVA-1.5 checkpoints can instead carry the real Llama-2 vocabulary in llava-hf's tokenizer format
(:class:`LlamaVocabulary`, :func:`write_llava_hf_tokenizer`): ``tokenizer.json`` with the legacy
SentencePiece normalizer (Prepend "▁", Replace " " -> "▁"), ``tokenizer_config.json`` with
``legacy: false``, ``<image>`` = 32000, ``<pad>`` = 32001, text vocabulary 32064 -- the files
llava-hf/llava-1.5-7b-hf ships. The vocabulary itself is not part of this package (Meta's Llama
licence); the tests obtain it from a package registry (docs/reference/INTERVENTION.md, "Token ids").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from model_wrappers.chat_templates import LLAVA15_CHAT_TEMPLATE

LLAVA_NEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}[INST] "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    " [/INST]{% else %} {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}"
)
"""The shape of llava-hf's LLaVA-1.6 (Mistral) chat template (``[INST] <image>\\n{text} [/INST]``)."""

QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The shape of Qwen2-VL's chat template, without the default system turn."""

_CORPUS = [
    "Where is the beer bottle in relation to the armchair? Answer with left, right, on or under.",
    "Where is the mug in relation to the knife? Answer with left, right, front or behind.",
    "Where is the dining table in the photo? Answer with left, right, top or bottom.",
    "Where is the refrigerator in relation to the oven? Answer with left, right, above, or below.",
    "Where are the black trees in relation to the fence? Answer with left, right, front, behind, above or below.",
    "Determine whether the description about the spatial relationship is correct or not. Answer with yes or no:",
    "The cat is on the left of the dog. The cup is under the table. Yes No Left Right On Under Front Behind",
    "USER: ASSISTANT: User: Assistant: system user assistant [INST] [/INST]",
    "0123456789 .,;:!?'\"()[]{}<>-_/\\ é ü ß 中文 日本語",
]


@dataclass(frozen=True)
class TinySpec:
    """Size knobs of a tiny checkpoint; the defaults keep a forward pass in milliseconds on CPU."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 4
    vision_hidden_size: int = 32
    vision_layers: int = 1
    image_size: int = 56
    patch_size: int = 14
    vocab_size: int = 600
    initializer_range: float = 0.4
    seed: int = 0


def _train_tokenizer(special_tokens: list[str], vocab_size: int, bos: str | None, unk: str | None):
    """Train a byte-level BPE tokenizer on a fixed corpus (deterministic, offline, < 1 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    if bos is not None:
        bos_id = tokenizer.token_to_id(bos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


LLAVA_HF_IMAGE_TOKEN_ID = 32000
LLAVA_HF_PAD_TOKEN_ID = 32001
LLAVA_HF_TEXT_VOCAB_SIZE = 32064
"""llava-hf/llava-1.5-7b-hf: ``<image>`` and ``<pad>`` follow the 32,000 Llama pieces; embeddings padded to 32064."""


@dataclass(frozen=True)
class LlamaVocabulary:
    """The Llama-2 SentencePiece-BPE vocabulary: 32,000 pieces in id order and the merges in priority order."""

    pieces: tuple[str, ...]
    merges: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if len(self.pieces) != 32000 or self.pieces[:3] != ("<unk>", "<s>", "</s>"):
            raise ValueError(
                f"expected the 32,000 Llama pieces starting <unk>, <s>, </s>; got {len(self.pieces)} starting "
                f"{self.pieces[:3]}"
            )


def write_llava_hf_tokenizer(folder: str | Path, vocabulary: LlamaVocabulary) -> Path:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` as llava-hf's LLaVA-1.5 checkpoints have them.

    ``tokenizer.json`` is the pre-5.x Llama fast tokenizer: BPE with byte fallback and the legacy
    normalizer (prepend "▁" to every text segment, spaces -> "▁"), ``<s>`` prepended by the
    post-processor; ``tokenizer_config.json`` names ``LlamaTokenizer`` with ``legacy: false``.
    transformers 5 rebuilds such a tokenizer with a Metaspace pre-tokenizer and, because of
    ``legacy: false``, prepends "▁" only to the first segment -- the difference
    ``model_wrappers.loading`` corrects for the paper's prompts.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {piece: index for index, piece in enumerate(vocabulary.pieces)}
    model = models.BPE(
        vocab=vocab, merges=list(vocabulary.merges), unk_token="<unk>", fuse_unk=True, byte_fallback=True
    )
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    special = [AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>", "<image>", "<pad>")]
    tokenizer.add_special_tokens(special)
    if tokenizer.token_to_id("<image>") != LLAVA_HF_IMAGE_TOKEN_ID or tokenizer.token_to_id("<pad>") != 32001:
        raise RuntimeError("the llava-hf special tokens did not get ids 32000 and 32001")
    tokenizer.save(str(folder / "tokenizer.json"))

    def added(content: str) -> dict:
        return {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }

    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            "0": added("<unk>"),
            "1": added("<s>"),
            "2": added("</s>"),
            str(LLAVA_HF_IMAGE_TOKEN_ID): added("<image>"),
            str(LLAVA_HF_PAD_TOKEN_ID): added("<pad>"),
        },
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<pad>",
        "padding_side": "left",
        "processor_class": "LlavaProcessor",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special_map = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
    return folder


def _llama_text_config(spec: TinySpec, vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.hidden_size * 2,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=8192,
        initializer_range=spec.initializer_range,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )


def _clip_vision_config(spec: TinySpec):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=spec.vision_hidden_size,
        intermediate_size=spec.vision_hidden_size * 2,
        num_hidden_layers=max(spec.vision_layers, 2),
        num_attention_heads=2,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        initializer_range=spec.initializer_range,
        initializer_factor=spec.initializer_range / 0.02,
    )


def _clip_image_processor_kwargs(spec: TinySpec) -> dict:
    return {
        "size": {"shortest_edge": spec.image_size},
        "crop_size": {"height": spec.image_size, "width": spec.image_size},
        "do_center_crop": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }


def _save(model, processor, path: Path, generation_eos: int, pad_id: int) -> Path:
    model.generation_config.eos_token_id = generation_eos
    model.generation_config.pad_token_id = pad_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / "TINY_CHECKPOINT.json").write_text(
        json.dumps({"note": "random weights built by tests/support/tiny_checkpoints.py"}) + "\n"
    )
    return path


def build_tiny_llava(
    path: str | Path,
    spec: TinySpec = TinySpec(),
    next_version: bool = False,
    vocabulary: LlamaVocabulary | None = None,
) -> Path:
    """Write a tiny LLaVA-1.5 (``llava``) or, with ``next_version``, LLaVA-1.6 (``llava_next``) checkpoint.

    With ``vocabulary`` the checkpoint carries the real Llama-2 vocabulary in llava-hf's format
    (:func:`write_llava_hf_tokenizer`; text vocabulary 32064, ``<image>`` 32000, ``<pad>`` 32001),
    so prompts tokenize exactly as for llava-hf/llava-1.5-7b-hf; otherwise a small byte-level BPE.
    """
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    special = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    if vocabulary is not None:
        write_llava_hf_tokenizer(path, vocabulary)
        tokenizer = AutoTokenizer.from_pretrained(path)
        ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in special}
        vocab = LLAVA_HF_TEXT_VOCAB_SIZE
    else:
        raw = _train_tokenizer(special, spec.vocab_size, bos="<s>", unk="<unk>")
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=raw,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            extra_special_tokens={"image_token": "<image>"},
            padding_side="left",
        )
        ids = {tok: raw.token_to_id(tok) for tok in special}
        vocab = raw.get_vocab_size()
    torch.manual_seed(spec.seed)
    text = _llama_text_config(spec, vocab, ids["<pad>"], ids["<s>"], ids["</s>"])
    vision = _clip_vision_config(spec)
    common = dict(
        vision_config=vision,
        text_config=text,
        image_token_id=ids["<image>"],
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        pad_token_id=ids["<pad>"],
        initializer_range=spec.initializer_range,
    )
    if next_version:
        pinpoints = [[spec.image_size, spec.image_size * 2], [spec.image_size * 2, spec.image_size]]
        config = LlavaNextConfig(image_grid_pinpoints=pinpoints, **common)
        model = LlavaNextForConditionalGeneration(config).eval()
        image_processor = LlavaNextImageProcessor(image_grid_pinpoints=pinpoints, **_clip_image_processor_kwargs(spec))
        processor = LlavaNextProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=spec.patch_size,
            vision_feature_select_strategy="default",
            chat_template=LLAVA_NEXT_CHAT_TEMPLATE,
            num_additional_image_tokens=1,
        )
    else:
        config = LlavaConfig(**common)
        model = LlavaForConditionalGeneration(config).eval()
        image_processor = CLIPImageProcessor(**_clip_image_processor_kwargs(spec))
        processor = LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=spec.patch_size,
            vision_feature_select_strategy="default",
            chat_template=LLAVA15_CHAT_TEMPLATE,
            num_additional_image_tokens=1,
        )
    _save(model, processor, path, ids["</s>"], ids["<pad>"])
    if vocabulary is not None:
        # save_pretrained wrote transformers 5's own rendering of the tokenizer; restore llava-hf's files.
        write_llava_hf_tokenizer(path, vocabulary)
    return path


def build_tiny_qwen2_vl(path: str | Path, spec: TinySpec = TinySpec(num_kv_heads=2)) -> Path:
    """Write a tiny Qwen2-VL checkpoint (multimodal RoPE, dynamic image grid, GQA text model)."""
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    raw = _train_tokenizer(special, spec.vocab_size, bos=None, unk=None)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        padding_side="left",
    )
    ids = {tok: raw.token_to_id(tok) for tok in special}
    head_dim = spec.hidden_size // spec.num_heads
    quarter = head_dim // 4
    mrope_section = [head_dim // 2 - 2 * quarter, quarter, quarter]
    torch.manual_seed(spec.seed)
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": raw.get_vocab_size(),
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.hidden_size * 2,
            "num_hidden_layers": spec.num_layers,
            "num_attention_heads": spec.num_heads,
            "num_key_value_heads": spec.num_kv_heads,
            "max_position_embeddings": 8192,
            "initializer_range": spec.initializer_range,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
            "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "depth": spec.vision_layers,
            "embed_dim": spec.vision_hidden_size,
            "hidden_size": spec.hidden_size,
            "num_heads": 2,
            "patch_size": spec.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "initializer_range": spec.initializer_range,
        },
        initializer_range=spec.initializer_range,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    pixels = spec.image_size * spec.image_size
    image_processor = Qwen2VLImageProcessor(
        min_pixels=pixels, max_pixels=pixels * 4, patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2
    )
    video_processor = Qwen2VLVideoProcessor(patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    return _save(model, processor, path, ids["<|im_end|>"], ids["<|endoftext|>"])


_QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _qwen_tokenizer(spec: TinySpec):
    """The byte-level BPE tokenizer of the tiny Qwen-VL checkpoints, and its special-token ids."""
    from transformers import PreTrainedTokenizerFast

    raw = _train_tokenizer(_QWEN_SPECIAL_TOKENS, spec.vocab_size, bos=None, unk=None)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        padding_side="left",
    )
    return tokenizer, {tok: raw.token_to_id(tok) for tok in _QWEN_SPECIAL_TOKENS}, raw.get_vocab_size()


def _qwen_text_config(spec: TinySpec, vocab_size: int, ids: dict, **rope_extra) -> dict:
    head_dim = spec.hidden_size // spec.num_heads
    quarter = head_dim // 4
    mrope_section = [head_dim // 2 - 2 * quarter, quarter, quarter]
    return {
        "vocab_size": vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.hidden_size * 2,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "max_position_embeddings": 8192,
        "initializer_range": spec.initializer_range,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": mrope_section,
            **rope_extra,
        },
        "pad_token_id": ids["<|endoftext|>"],
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
    }


def _qwen_token_ids(ids: dict) -> dict:
    return dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def build_tiny_qwen2_5_vl(path: str | Path, spec: TinySpec = TinySpec(num_kv_heads=2)) -> Path:
    """Write a tiny Qwen2.5-VL checkpoint (``Qwen2_5_VLConfig``: windowed vision attention, M-RoPE, GQA)."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer, ids, vocab = _qwen_tokenizer(spec)
    torch.manual_seed(spec.seed)
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text_config(spec, vocab, ids),
        vision_config={
            "depth": max(spec.vision_layers, 2),
            "hidden_size": spec.vision_hidden_size,
            "intermediate_size": spec.vision_hidden_size * 2,
            "num_heads": 2,
            "patch_size": spec.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            # one window of 2x2 merged patches, so the windowed and the full-attention blocks differ
            "window_size": spec.patch_size * 4,
            "out_hidden_size": spec.hidden_size,
            "fullatt_block_indexes": [max(spec.vision_layers, 2) - 1],
            "initializer_range": spec.initializer_range,
        },
        initializer_range=spec.initializer_range,
        **_qwen_token_ids(ids),
    )
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    pixels = spec.image_size * spec.image_size
    image_processor = Qwen2VLImageProcessor(
        min_pixels=pixels, max_pixels=pixels * 4, patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2
    )
    video_processor = Qwen2VLVideoProcessor(patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    return _save(model, processor, path, ids["<|im_end|>"], ids["<|endoftext|>"])


def build_tiny_qwen3_vl(path: str | Path, spec: TinySpec = TinySpec(num_kv_heads=2, patch_size=16)) -> Path:
    """Write a tiny Qwen3-VL checkpoint (``Qwen3VLConfig``: DeepStack features into the first decoder
    layers, interleaved M-RoPE, learned vision position embeddings, GQA)."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer, ids, vocab = _qwen_tokenizer(spec)
    text = _qwen_text_config(spec, vocab, ids, mrope_interleaved=True)
    text["head_dim"] = spec.hidden_size // spec.num_heads
    vision_layers = max(spec.vision_layers, 2)
    torch.manual_seed(spec.seed)
    config = Qwen3VLConfig(
        text_config=text,
        vision_config={
            "depth": vision_layers,
            "hidden_size": spec.vision_hidden_size,
            "intermediate_size": spec.vision_hidden_size * 2,
            "num_heads": 2,
            "patch_size": spec.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": spec.hidden_size,
            "num_position_embeddings": 64,
            # vision blocks 0 and 1 feed decoder layers 0 and 1 (DeepStack)
            "deepstack_visual_indexes": list(range(min(vision_layers, spec.num_layers))),
            "initializer_range": spec.initializer_range,
        },
        initializer_range=spec.initializer_range,
        **_qwen_token_ids(ids),
    )
    model = Qwen3VLForConditionalGeneration(config).eval()
    pixels = spec.image_size * spec.image_size
    image_processor = Qwen2VLImageProcessor(
        min_pixels=pixels, max_pixels=pixels * 4, patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2
    )
    video_processor = Qwen3VLVideoProcessor(patch_size=spec.patch_size, merge_size=2, temporal_patch_size=2)
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    return _save(model, processor, path, ids["<|im_end|>"], ids["<|endoftext|>"])


LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The shape of llava-hf's LLaVA-OneVision chat template (Qwen2 turns, ``<image>\\n`` before the text)."""


def build_tiny_llava_onevision(
    path: str | Path, spec: TinySpec = TinySpec(num_kv_heads=2), vision_aspect_ratio: str = "anyres_max_1"
) -> Path:
    """Write a tiny LLaVA-OneVision checkpoint (``LlavaOnevisionConfig``: SigLIP tower, Qwen2 language model,
    AnyRes tiles with one ``image_newline`` per row after the base image's grid).

    ``anyres_max_1`` (the real checkpoints use ``anyres_max_9``) makes every multi-tile image exceed
    the budget, so the bilinear downsampling of the tile grid is exercised at this tiny size.
    """
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    raw = _train_tokenizer(special, spec.vocab_size, bos=None, unk=None)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        padding_side="left",
    )
    ids = {tok: raw.token_to_id(tok) for tok in special}
    size = spec.image_size
    pinpoints = [[size, size * 2], [size * 2, size], [size * 2, size * 2]]
    torch.manual_seed(spec.seed)
    config = LlavaOnevisionConfig(
        text_config={
            "model_type": "qwen2",
            "vocab_size": raw.get_vocab_size(),
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.hidden_size * 2,
            "num_hidden_layers": spec.num_layers,
            "num_attention_heads": spec.num_heads,
            "num_key_value_heads": spec.num_kv_heads,
            "max_position_embeddings": 8192,
            "initializer_range": spec.initializer_range,
            "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": spec.vision_hidden_size,
            "intermediate_size": spec.vision_hidden_size * 2,
            "num_hidden_layers": max(spec.vision_layers, 2),
            "num_attention_heads": 2,
            "image_size": size,
            "patch_size": spec.patch_size,
        },
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio=vision_aspect_ratio,
        initializer_range=spec.initializer_range,
    )
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    with torch.no_grad():  # random weights at the configured scale, including the newline embedding
        model.model.image_newline.normal_(0.0, spec.initializer_range)
    image_processor = LlavaOnevisionImageProcessor(
        image_grid_pinpoints=pinpoints, size={"height": size, "width": size}, do_pad=True
    )
    video_processor = LlavaOnevisionVideoProcessor(size={"height": size, "width": size})
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        num_image_tokens=(size // spec.patch_size) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio=vision_aspect_ratio,
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
    )
    return _save(model, processor, path, ids["<|im_end|>"], ids["<|endoftext|>"])
