"""Public Python entry point: the AdaptVis interventions and the VCD / DoLa baselines on a transformers model.

Example (see README)::

    from transformers import AutoProcessor, LlavaForConditionalGeneration
    from model_wrappers.api import adaptvis_generate

    processor = AutoProcessor.from_pretrained("llava-hf/llava-1.5-7b-hf")
    processor.tokenizer.padding_side = "left"
    model = LlavaForConditionalGeneration.from_pretrained("llava-hf/llava-1.5-7b-hf")
    inputs = processor(images=[image], text=["<image>\\nUSER: Where is the mug in relation to the "
                       "knife? Answer with left, right, front or behind.\\nASSISTANT:"], return_tensors="pt")
    result = adaptvis_generate(model, inputs, method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.3)
    print(processor.batch_decode([r.tokens for r in result], skip_special_tokens=True), result[0].alpha)

The model's language model is switched to the ``adaptvis_*`` attention backend for the call and
switched back afterwards; the model is not otherwise modified.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from model_wrappers.architectures import num_text_layers, prompt_batch
from model_wrappers.decoding import DecodeSettings, SampleOutput, eos_and_pad, generate
from model_wrappers.intervention import image_scaling_backend
from model_wrappers.methods import MethodConfig
from model_wrappers.vision import VisionOptions, sample_keys_of, vision_inputs

__all__ = ["SampleOutput", "adaptvis_generate"]


def adaptvis_generate(
    model,
    inputs: Mapping[str, torch.Tensor],
    method: str = "baseline",
    *,
    sample_keys: list[str] | None = None,
    max_new_tokens: int = 100,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    vision_norm: str | float | None = None,
    vision_layer: str | int | list[int] | None = None,
    vision_token_order: str = "normal",
    tokenizer=None,
    **method_arguments: object,
) -> list[SampleOutput]:
    """Greedy-decode the prompts in ``inputs`` (a processor's output) with an AdaptVis method or a baseline.

    ``method`` is ``baseline``, ``scaling_vis`` (needs ``alpha``), ``adapt_vis`` (needs ``alpha1``,
    ``alpha2``, ``threshold``), ``sweep`` (``alphas``, default the paper's grid), ``vcd``
    (``vcd_alpha`` 1, ``vcd_beta`` 0.1, ``vcd_noise_step`` 500 by default; ``sample_keys``, one
    string per prompt, seed its noise -- default: a hash of each prompt's token ids) or ``dola``
    (``dola_layers`` high, ``repetition_penalty`` 1.2 by default), ``pai`` (``pai_alpha`` 0.2,
    ``pai_gamma`` 1.1, ``pai_start_layer`` 2, ``pai_end_layer`` the layer count) or ``vaf``
    (``vaf_enhance`` 1.15, ``vaf_suppress`` 0.95, ``vaf_layers`` 9-14); ``adapt_vis`` also takes
    ``gate_signal`` (docs/guides/METHODS.md). Batches must be
    left-padded (``processor.tokenizer.padding_side = "left"``). Returns one
    :class:`~model_wrappers.decoding.SampleOutput` per prompt: answer token ids, the alpha applied,
    the confidence under alpha = 1, and in sweep mode the answer for every alpha.
    ``method_arguments``: the method's own arguments and the shared ``layers`` / ``confidence_rule``;
    the accepted names come from the method registry (``model_wrappers.methods.describe_methods()``).

    ``vision_norm``, ``vision_layer`` and ``vision_token_order`` are this suite's vision-input
    options (docs/guides/VISION.md); ``vision_norm=mean|median|max`` needs the ``tokenizer`` (it measures
    the text-embedding norms of its ordinary tokens). ``shuffled`` seeds each row's permutation from
    a hash of that row's token ids and pixels.
    """
    config = MethodConfig.from_model_args(method=method, **method_arguments)
    config.check_layers(num_text_layers(model))
    options = VisionOptions.from_model_args(vision_norm, vision_layer, vision_token_order)
    if isinstance(options.norm, str) and tokenizer is None:
        raise ValueError(f"vision_norm={options.norm} measures the checkpoint's text embeddings: pass tokenizer=")
    vision = options.resolve(model, tokenizer)
    attention_mask = inputs["attention_mask"]
    if bool((attention_mask[:, -1] == 0).any()):
        raise ValueError("inputs are right-padded; set processor.tokenizer.padding_side = 'left' before tokenising")
    eos, pad = eos_and_pad(model, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    settings = DecodeSettings(max_new_tokens=max_new_tokens, eos_token_ids=eos, pad_token_id=pad)
    keys = sample_keys
    if keys is None and options.token_order == "shuffled":
        keys = sample_keys_of(inputs)
    with image_scaling_backend(model), vision_inputs(model, vision, sample_keys=keys):
        return generate(model, prompt_batch(model, inputs), config, settings, sample_keys=sample_keys)
