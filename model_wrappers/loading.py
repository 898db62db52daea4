"""Load a checkpoint (hub id or local folder) for the AdaptVis wrappers, with errors that say what to do.

This is the only place that calls ``from_pretrained``; tests, the demo and real 7B runs all go
through it, so the tiny local checkpoints exercise the same path as ``llava-hf/llava-1.5-7b-hf``.

Problems with the checkpoint raise :class:`CheckpointError`, problems with the loading arguments
(``dtype``, ``attn_implementation``, ``device``) raise
:class:`~model_wrappers.errors.MethodArgumentError`; both messages name the argument
(``pretrained=...``) and say what to do. A weights file that lacks tensors the architecture needs
is an error: transformers would only log a report and initialise them randomly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from adaptvis_tasks.families import ADDING_A_FAMILY, family_entry, supported_text
from model_wrappers.errors import CheckpointError, MethodArgumentError
from model_wrappers.families import family_spec
from model_wrappers.intervention import SUPPORTED_BASE_BACKENDS
from model_wrappers.model_args import parse_dtype

__all__ = ["CheckpointError", "InputOptions", "LoadedCheckpoint", "load_checkpoint"]

_REDOWNLOAD = "re-download the checkpoint, or re-save it with save_pretrained (model and processor)"


IMAGE_BACKENDS = ("pil", "torchvision")
"""``image_backend=``: transformers' PIL image processors (the reference's; default) or the torchvision ones."""

PROMPT_STYLES = ("chat", "paper")
"""``prompt_style=``: the checkpoint's chat template, or the paper's verbatim LLaVA-1.5 prompt."""


@dataclass
class LoadedCheckpoint:
    model: torch.nn.Module
    processor: object
    model_type: str
    prompt_style: str = "chat"
    tokenizer_rule: str = "checkpoint"
    """``llama_legacy`` (Llama tokenizer reloaded with ``legacy=True``, the paper prompt path) or ``checkpoint``."""


@dataclass(frozen=True)
class InputOptions:
    """How prompts and images become model inputs (model arguments ``prompt_style``, ``image_backend``, pixels)."""

    prompt_style: str | None = None
    image_backend: str = "pil"
    min_pixels: int | None = None
    max_pixels: int | None = None

    def check(self) -> None:
        """Argument errors that need no checkpoint (raised before any weights are read)."""
        if self.prompt_style is not None and self.prompt_style not in PROMPT_STYLES:
            raise MethodArgumentError(f"prompt_style={self.prompt_style!r}: use one of {', '.join(PROMPT_STYLES)}")
        if self.image_backend not in IMAGE_BACKENDS:
            raise MethodArgumentError(
                f"image_backend={self.image_backend!r}: use pil (transformers' PIL image processor, as the "
                "reference) or torchvision (faster; differs by a few 8-bit levels at some pixels)"
            )
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise MethodArgumentError(f"{name}={value!r}: give a positive number of pixels, e.g. {name}=1003520")
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise MethodArgumentError(
                f"min_pixels={self.min_pixels} is larger than max_pixels={self.max_pixels}; "
                "give min_pixels <= max_pixels"
            )

    def resolve_prompt_style(self, model_type: str, wrapper_name: str) -> str:
        """The prompt style for ``model_type``; an unsupported combination names the argument."""
        family = family_spec(model_type)
        style = self.prompt_style or family.default_prompt_style
        allowed = family.prompt_styles
        if style not in allowed:
            why = family.prompt_style_note
            raise MethodArgumentError(
                f"prompt_style={style} is not available for this {model_type} checkpoint in {wrapper_name}: {why}; "
                f"use prompt_style={allowed[0]} or leave it out"
            )
        return style

    def check_pixels_apply(self, model_type: str) -> None:
        if not family_spec(model_type).pixel_arguments and (self.min_pixels is not None or self.max_pixels is not None):
            raise MethodArgumentError(
                f"min_pixels/max_pixels apply to Qwen2-VL's dynamic image grid only; this {model_type} checkpoint "
                "resizes every image to its fixed input size: remove them"
            )


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype | str:
    """``dtype=`` checked by :func:`model_wrappers.model_args.parse_dtype`; ``auto``: the checkpoint's
    own dtype on accelerators, float32 on CPU (half precision on CPU is slow and, for some kernels,
    unsupported)."""
    parsed = parse_dtype(dtype)
    if parsed == "auto":
        return "auto" if device.type != "cpu" else torch.float32
    return parsed


def check_attn_implementation(attn_implementation: str, device: torch.device) -> None:
    """Only backends the intervention can wrap, and that can run here, are accepted (before any weights are read)."""
    name = str(attn_implementation)
    if name not in SUPPORTED_BASE_BACKENDS:
        raise MethodArgumentError(
            f"attn_implementation={attn_implementation!r} is not supported; use one of "
            f"{', '.join(SUPPORTED_BASE_BACKENDS)} (the AdaptVis intervention wraps these; eager would "
            "materialise full attention matrices)"
        )
    if name.startswith("flash_attention"):
        from transformers import utils

        version = name.rsplit("_", 1)[1]
        if not getattr(utils, f"is_flash_attn_{version}_available", lambda: False)():
            raise MethodArgumentError(
                f"attn_implementation={name} needs the flash-attn package (version {version}) and a supported GPU; "
                "it is not available here: install it or use attn_implementation=sdpa"
            )
        if device.type != "cuda":
            raise MethodArgumentError(f"attn_implementation={name} runs on CUDA devices only; device={device}")


def _check_device(device: torch.device) -> None:
    """A CUDA device that does not exist fails here, before gigabytes of weights are read."""
    if device.type != "cuda":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0 or (device.index is not None and device.index >= count):
        raise MethodArgumentError(
            f"device={str(device)!r}: this machine has {count} CUDA device(s); give device=cpu"
            + (f" or one of cuda:0..cuda:{count - 1}" if count else "")
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _folder_contents(pretrained: str) -> str:
    """`` (folder holds: a, b, ...)`` for a local folder, else empty."""
    path = Path(pretrained).expanduser()
    if not path.is_dir():
        return ""
    names = sorted(p.name for p in path.iterdir())
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "")
    return f" (folder holds: {shown or 'nothing'})"


def _check_local_folder(pretrained: str) -> None:
    """Clear errors for local folders; hub ids (``org/name``) are left to ``from_pretrained``."""
    path = Path(pretrained).expanduser()
    if not pretrained.strip():
        raise CheckpointError(
            "pretrained= is empty; give a checkpoint folder or a hub id, e.g. pretrained=llava-hf/llava-1.5-7b-hf"
        )
    if not path.exists():
        if pretrained.startswith((".", "/", "~")) or pretrained.count("/") > 1:
            raise CheckpointError(
                f"pretrained={pretrained!r}: no such folder; give the folder of a saved checkpoint (config.json, "
                "weights, tokenizer and processor files) or a hub id such as llava-hf/llava-1.5-7b-hf"
            )
        return
    if not path.is_dir():
        raise CheckpointError(f"pretrained={pretrained!r} is a file; give the checkpoint folder that holds config.json")
    if not (path / "config.json").is_file():
        found = sorted(p.name for p in path.iterdir())[:10]
        raise CheckpointError(
            f"pretrained={pretrained!r} has no config.json (found: {found or 'nothing'}); give a Hugging Face "
            "checkpoint folder (config.json, weights, tokenizer and processor files) or a hub id"
        )


def _unsupported(pretrained: str, model_type: object, allowed: tuple[str, ...], wrapper_name: str) -> CheckpointError:
    supported = supported_text(allowed)
    entry = family_entry(model_type)
    if entry is not None:
        todo = f"use --model {entry.lmms_model} for it"
    else:
        examples = ", ".join(family_entry(t).example_checkpoint for t in allowed)
        todo = (
            f"give a checkpoint of a supported architecture, e.g. {examples} "
            f"(supported families: {supported_text()}; to add one, see {ADDING_A_FAMILY})"
        )
    return CheckpointError(
        f"pretrained={pretrained!r} is a {model_type!r} checkpoint; {wrapper_name} supports {supported}: {todo}"
    )


def load_checkpoint(
    pretrained: str,
    allowed_model_types: tuple[str, ...],
    wrapper_name: str,
    device: torch.device,
    dtype: str | torch.dtype = "auto",
    attn_implementation: str = "sdpa",
    revision: str | None = None,
    trust_remote_code: bool = False,
    inputs: InputOptions = InputOptions(),
    rms_norm_eps: float | None = None,
) -> LoadedCheckpoint:
    """Load model and processor; refuse architectures ``wrapper_name`` does not support.

    ``inputs`` chooses the input pipeline: on the paper prompt path (LLaVA-1.5, or LLaVA-1.6 with
    ``prompt_style=paper``) a Llama tokenizer is reloaded with ``legacy=True``
    (:func:`paper_tokenizer`), and the image processor is transformers' PIL one unless
    ``image_backend=torchvision`` (:func:`image_processor`). ``rms_norm_eps`` overrides the
    language model's RMSNorm epsilon (the reference's LLaVA classes use 1e-6, not the checkpoint's
    1e-5; docs/reference/INTERVENTION.md) -- a named, opt-in deviation from the checkpoint.
    """
    import transformers
    from transformers import AutoConfig, AutoProcessor

    pretrained = str(pretrained)
    inputs.check()
    torch_dtype = resolve_dtype(dtype, device)
    check_attn_implementation(attn_implementation, device)
    _check_device(device)
    _check_local_folder(pretrained)
    try:
        config = AutoConfig.from_pretrained(pretrained, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as error:  # transformers raises OSError/ValueError with long texts
        raise CheckpointError(
            f"pretrained={pretrained!r}: cannot read its config ({_first_line(error)}); check the folder or hub id "
            f"(offline machines need a local folder), or {_REDOWNLOAD}"
        ) from error
    model_type = getattr(config, "model_type", None)
    if model_type not in allowed_model_types:
        raise _unsupported(pretrained, model_type, allowed_model_types, wrapper_name)
    if rms_norm_eps is not None:
        if not 0 < rms_norm_eps < 1:
            raise MethodArgumentError(f"rms_norm_eps={rms_norm_eps!r}: give a small positive number, e.g. 1e-6")
        text_config = getattr(config, "text_config", None) or config
        if not hasattr(text_config, "rms_norm_eps"):
            raise MethodArgumentError(
                f"rms_norm_eps: the {model_type} language model of {pretrained!r} has no RMSNorm epsilon to override"
            )
        text_config.rms_norm_eps = float(rms_norm_eps)
    prompt_style = inputs.resolve_prompt_style(model_type, wrapper_name)
    inputs.check_pixels_apply(model_type)
    model_class = getattr(transformers, family_spec(model_type).model_class)
    try:
        model, info = model_class.from_pretrained(
            pretrained,
            config=config,
            revision=revision,
            dtype=torch_dtype,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
        )
    except Exception as error:
        raise CheckpointError(
            f"pretrained={pretrained!r}: cannot load the {model_type} weights ({_first_line(error)}); the weights "
            "(model.safetensors, sharded model-*.safetensors with their index, or pytorch_model.bin) are missing, "
            f"truncated or do not match config.json{_folder_contents(pretrained)}: {_REDOWNLOAD}"
        ) from error
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(
            f"pretrained={pretrained!r}: the weights lack {len(missing)} tensor(s) of the {model_type} architecture "
            f"({shown}); transformers would initialise them randomly. The weights file does not belong to this "
            f"config.json or is incomplete: {_REDOWNLOAD}"
        )
    from model_wrappers.vision_extras import install_checkpoint_vision_extras

    install_checkpoint_vision_extras(model, pretrained, revision=revision)
    try:
        processor = AutoProcessor.from_pretrained(pretrained, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as error:
        raise CheckpointError(
            f"pretrained={pretrained!r}: cannot load its processor ({_first_line(error)}); a checkpoint needs the "
            "tokenizer (tokenizer.json or tokenizer.model, tokenizer_config.json) and the image processor "
            f"(preprocessor_config.json or processor_config.json){_folder_contents(pretrained)}: {_REDOWNLOAD}"
        ) from error
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise CheckpointError(
            f"pretrained={pretrained!r}: its processor is a {type(processor).__name__} without a tokenizer and an "
            f"image processor; {wrapper_name} needs the multimodal processor of the checkpoint: {_REDOWNLOAD}"
        )
    processor.image_processor = image_processor(pretrained, model_type, inputs, revision, trust_remote_code)
    tokenizer_rule = "checkpoint"
    if prompt_style == "paper":
        legacy = paper_tokenizer(pretrained, revision, trust_remote_code)
        if legacy is not None:
            _check_same_special_ids(pretrained, processor.tokenizer, legacy)
            processor.tokenizer = legacy
            tokenizer_rule = "llama_legacy"
    if prompt_style == "chat" and getattr(processor, "chat_template", None) is None:
        raise CheckpointError(
            f"pretrained={pretrained!r}: the {model_type} processor has no chat template, which {wrapper_name} "
            "prompts it with; save the checkpoint's chat_template.jinja (or chat_template.json) into the folder: "
            f"{_REDOWNLOAD}"
        )
    try:
        model.to(device)
    except (RuntimeError, AssertionError, ValueError) as error:  # no driver, no such device index, ...
        raise MethodArgumentError(
            f"device={str(device)!r} cannot be used ({_first_line(error)}); give device=cpu or an available "
            "accelerator such as device=cuda:0"
        ) from error
    model.eval()
    processor.tokenizer.padding_side = "left"
    return LoadedCheckpoint(
        model=model,
        processor=processor,
        model_type=model_type,
        prompt_style=prompt_style,
        tokenizer_rule=tokenizer_rule,
    )


def image_processor(
    pretrained: str,
    model_type: str,
    inputs: InputOptions = InputOptions(),
    revision: str | None = None,
    trust_remote_code: bool = False,
):
    """The checkpoint's image processor on the chosen backend (``pil`` by default), with pixel limits.

    transformers 4.x -- the authors pinned 4.39.1 -- had only the PIL image processors; transformers 5
    loads the torchvision ones by default, which differ by a few 8-bit levels at some pixels
    and flip some greedy answers of a peaky model. So every family gets the PIL processor unless
    ``image_backend=torchvision``.
    """
    from transformers import AutoImageProcessor

    kwargs: dict = {}
    if family_spec(model_type).pixel_arguments:
        kwargs.update({k: v for k, v in (("min_pixels", inputs.min_pixels), ("max_pixels", inputs.max_pixels)) if v})
    try:
        return AutoImageProcessor.from_pretrained(
            pretrained, revision=revision, trust_remote_code=trust_remote_code, backend=inputs.image_backend, **kwargs
        )
    except Exception as error:
        raise CheckpointError(
            f"pretrained={pretrained!r}: cannot load its image processor with image_backend={inputs.image_backend} "
            f"({_first_line(error)}); the checkpoint needs preprocessor_config.json or processor_config.json"
            f"{_folder_contents(pretrained)}: {_REDOWNLOAD}"
        ) from error


def paper_tokenizer(pretrained: str, revision: str | None = None, trust_remote_code: bool = False):
    """The checkpoint's Llama tokenizer with ``legacy=True``, or ``None`` if it is not a Llama tokenizer.

    The authors (transformers 4.39.1) tokenized with llava-hf's ``tokenizer.json``, whose legacy
    normalizer prepends "▁" to every text segment, so the text after ``<image>`` starts with "▁"
    (29871): ``<image>\nUSER:`` -> ``[1, 32000, 29871, 13, 11889, 29901]``. transformers 5 builds
    ``LlamaTokenizer`` with a Metaspace pre-tokenizer that, with the checkpoint's ``legacy: false``,
    prepends "▁" to the first segment only (``[1, 32000, 13, 11889, ...]``); ``legacy=True`` makes
    it prepend to every segment again. Reloading as ``LlamaTokenizer`` also fixes the ids whichever
    class transformers would pick and whatever pre-tokenizer a re-saved ``tokenizer.json`` carries.
    Tokenizers that are not Llama SentencePiece-BPE (byte-level BPE, Qwen2, ...) are left as loaded.
    """
    from transformers import LlamaTokenizer
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    try:
        declared = get_tokenizer_config(pretrained, revision=revision).get("tokenizer_class") or ""
    except Exception:  # no tokenizer_config.json: the processor load already said what is wrong
        return None
    if declared.removesuffix("Fast") != "LlamaTokenizer":
        return None
    try:
        tokenizer = LlamaTokenizer.from_pretrained(pretrained, revision=revision, legacy=True)
    except Exception as error:
        raise CheckpointError(
            f"pretrained={pretrained!r}: its tokenizer_config.json names {declared}, but the tokenizer cannot be "
            f"loaded as one with legacy=True ({_first_line(error)}): {_REDOWNLOAD}"
        ) from error
    tokenizer.padding_side = "left"
    return tokenizer


def _check_same_special_ids(pretrained: str, loaded, legacy) -> None:
    """The reloaded tokenizer must agree with the processor's on every added token (e.g. ``<image>``)."""
    before = {token: loaded.convert_tokens_to_ids(token) for token in loaded.get_added_vocab()}
    after = {token: legacy.convert_tokens_to_ids(token) for token in before}
    if before != after or len(legacy) != len(loaded):
        raise CheckpointError(
            f"pretrained={pretrained!r}: reloading its Llama tokenizer with legacy=True changed the vocabulary "
            f"({len(loaded)} -> {len(legacy)} entries, added tokens {before} -> {after}); the tokenizer files "
            f"disagree with each other: {_REDOWNLOAD}"
        )
