"""Shared by the VCD / DoLa tests: a tiny checkpoint loaded twice, and a naive full-forward reference.

The reference is deliberately plain: one sample, eager attention, no KV cache, the whole sequence
(prompt + tokens generated so far) re-run at every step, hidden states read with forward hooks on
the decoder layers rather than through transformers' ``output_hidden_states``.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from model_wrappers.api import adaptvis_generate
from model_wrappers.intervention import enable_image_attention_scaling
from tests.model.test_intervention import QUESTIONS, _image, _prompt
from tests.support.model_fixtures import MROPE_ARCHITECTURES

NEW_TOKENS = 6


class Harness:
    """``model``: the product's (adaptvis_sdpa backend); ``reference``: eager, used one sample at a time."""

    def __init__(self, path, model_type: str) -> None:
        self.model_type = model_type
        self.processor = AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
        enable_image_attention_scaling(self.model)
        self.reference = AutoModelForImageTextToText.from_pretrained(
            path, dtype=torch.float32, attn_implementation="eager"
        ).eval()

    def inputs(self, indices):
        texts = [_prompt(self.processor, self.model_type, QUESTIONS[i]) for i in indices]
        return self.processor(images=[_image(i) for i in indices], text=texts, padding=True, return_tensors="pt")

    def generate(self, indices, method: str, keys=None, **arguments):
        """The product: ``adaptvis_generate`` on a left-padded batch, no EOS (always NEW_TOKENS tokens)."""
        if keys is None:
            keys = [f"sample-{i}" for i in indices]
        return adaptvis_generate(
            self.model,
            self.inputs(indices),
            method,
            max_new_tokens=NEW_TOKENS,
            eos_token_id=[],
            pad_token_id=0,
            sample_keys=keys,
            **arguments,
        )

    def decoder_layers(self):
        return self.reference.model.language_model.layers

    def full_forward(self, inputs, generated: list[int], pixel_values: torch.Tensor | None = None):
        """Last-position logits and per-layer residual streams ``[embeddings, layer 0 out, ...]`` (1 sample)."""
        extra = torch.tensor([generated], dtype=torch.long)
        input_ids = torch.cat([inputs["input_ids"], extra], dim=1)
        kwargs = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        if pixel_values is not None:
            kwargs["pixel_values"] = pixel_values
        if self.model_type in MROPE_ARCHITECTURES:
            mm = inputs["mm_token_type_ids"]
            kwargs["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(extra, dtype=mm.dtype)], dim=1)
            self.reference.model.rope_deltas = None
        captured: list[torch.Tensor] = []
        hooks = [
            layer.register_forward_hook(lambda module, args, output: captured.append(_hidden(output)))
            for layer in self.decoder_layers()
        ]
        embed = self.reference.get_input_embeddings().register_forward_hook(
            lambda module, args, output: captured.insert(0, output)
        )
        try:
            with torch.no_grad():
                out = self.reference(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        finally:
            for hook in [*hooks, embed]:
                hook.remove()
        return out.logits[0, -1].float(), [state[0, -1] for state in captured]


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output
