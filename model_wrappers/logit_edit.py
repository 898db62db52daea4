"""Edits of the pre-softmax attention logits of chosen query rows on chosen key columns.

A :class:`LogitEdit` says, per batch row, from which query position on the logits are edited
(``rows_from``, an index into the left-padded sequence, which is also the KV-cache index) and,
per key column of the prompt, how::

    A'[n, j] = scale[j] * A[n, j] + gain[j] * |A[n, j]|      for query rows n >= rows_from
    A'[n, j] = A[n, j]                                        otherwise

``A = q . k / sqrt(d)`` is the unmasked logit; columns the mask hides stay hidden, so on every
visible column it does not matter whether the edit comes before or after the mask is added (the
mask is 0 there). Columns past the prompt (generated tokens) are never edited. The edit acts in
the decoder layers ``layers`` (``None`` = all) of the language model, through the ``adaptvis_*``
attention backend (``model_wrappers.intervention``) while :func:`attention_logit_edit` is active.

Cost: a purely multiplicative edit (``gain is None``) is ``q . (scale * k)``, so it runs inside
the fused kernel with scaled keys -- one extra fused call over the edited query rows only
(:meth:`LogitEdit.attend`). An edit with ``|A|`` cannot be folded into keys: the edited rows'
logits are materialised (``[batch, heads, edited rows, keys]``; PAI edits one row per call), all
other rows stay on the fused kernel.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

__all__ = ["LogitEdit", "active_logit_edit", "attention_logit_edit"]


def _repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return states
    batch, heads, length, dim = states.shape
    return states[:, :, None].expand(batch, heads, groups, length, dim).reshape(batch, heads * groups, length, dim)


def _columns(per_column: torch.Tensor, kv_len: int, fill: float) -> torch.Tensor:
    """``[batch, prompt_len]`` -> ``[batch, kv_len]``: cut to the keys present, ``fill`` past the prompt."""
    prompt_len = per_column.shape[1]
    if kv_len <= prompt_len:
        return per_column[:, :kv_len]
    return torch.cat([per_column, per_column.new_full((per_column.shape[0], kv_len - prompt_len), fill)], dim=1)


def _visible(attention_mask: torch.Tensor | None, first_row: int, rows: int, start: int, kv_len: int, device):
    """The ``[batch or 1, 1, rows, kv_len]`` bool mask of query rows ``first_row:`` (causal when no mask was given)."""
    if attention_mask is None:
        query_index = start + torch.arange(first_row, first_row + rows, device=device)
        return (torch.arange(kv_len, device=device)[None, :] <= query_index[:, None])[None, None]
    tail = attention_mask[:, :, first_row : first_row + rows, :kv_len]
    if tail.dtype == torch.bool:
        return tail
    return tail > torch.finfo(tail.dtype).min / 2


@dataclass(frozen=True)
class LogitEdit:
    """Per batch row: edit query rows ``>= rows_from`` on prompt columns by ``scale`` and ``gain``.

    ``rows_from``: ``[batch]`` long. ``scale``: ``[batch, prompt_len]`` float32 (1 = unchanged).
    ``gain``: ``[batch, prompt_len]`` float32 (0 = unchanged) or ``None`` (multiplicative only).
    """

    rows_from: torch.Tensor
    scale: torch.Tensor
    gain: torch.Tensor | None = None
    layers: frozenset[int] | None = None

    @classmethod
    def build(
        cls,
        rows_from: torch.Tensor,
        scale: torch.Tensor,
        gain: torch.Tensor | None = None,
        layers: Sequence[int] | None = None,
    ) -> LogitEdit:
        """Validated shapes; ``layers`` ``None`` = every decoder layer."""
        if rows_from.ndim != 1 or scale.ndim != 2 or scale.shape[0] != rows_from.shape[0]:
            raise ValueError(
                f"rows_from must be [batch] and scale [batch, prompt_len]; got {tuple(rows_from.shape)} and "
                f"{tuple(scale.shape)}"
            )
        if gain is not None and gain.shape != scale.shape:
            raise ValueError(f"gain must have the shape of scale {tuple(scale.shape)}; got {tuple(gain.shape)}")
        return cls(
            rows_from=rows_from.long(),
            scale=scale.float(),
            gain=None if gain is None else gain.float(),
            layers=None if layers is None else frozenset(layers),
        )

    def applies_to(self, layer_idx: int | None) -> bool:
        return self.layers is None or layer_idx in self.layers

    def attend(self, base: Callable, module, query, key, value, attention_mask, **kwargs):
        """One attention call with the edit: the fused ``base`` for unedited rows, the edit for the others.

        ``query`` ``[batch, heads, q_len, dim]``, ``key``/``value`` ``[batch, kv_heads, kv_len, dim]``
        (the cache included); the query rows are the last ``q_len`` positions of the sequence.
        """
        batch, _, q_len, _ = query.shape
        kv_len = key.shape[2]
        if self.rows_from.shape[0] != batch:
            raise RuntimeError(
                f"the attention-logit edit covers {self.rows_from.shape[0]} rows; the attention call has {batch}"
            )
        start = kv_len - q_len
        device = query.device
        row_index = start + torch.arange(q_len, device=device)
        edited = row_index[None, :] >= self.rows_from.to(device)[:, None]
        if not bool(edited.any()):
            return base(module, query, key, value, attention_mask, **kwargs)
        first = max(0, int(self.rows_from.min()) - start)
        visible = _visible(attention_mask, first, q_len - first, start, kv_len, device)
        scale = _columns(self.scale.to(device), kv_len, 1.0)
        if self.gain is None:
            scaled_key = (key.to(torch.float32) * scale[:, None, :, None]).to(key.dtype)
            tail, _ = base(module, query[:, :, first:], scaled_key, value, visible, **kwargs)
        else:
            tail = self._materialised(module, query[:, :, first:], key, value, visible, scale, kv_len, **kwargs)
        if first == 0 and bool(edited.all()):
            return tail, None
        output, weights = base(module, query, key, value, attention_mask, **kwargs)
        output = output.clone()
        output[:, first:] = torch.where(edited[:, first:, None, None], tail, output[:, first:])
        return output, weights

    def _materialised(self, module, query, key, value, visible, scale, kv_len, **kwargs) -> torch.Tensor:
        """The edited rows' logits, edit, mask, softmax (float32), times values; ``[batch, rows, heads, dim]``."""
        assert self.gain is not None
        groups = query.shape[1] // key.shape[1]
        keys = _repeat_kv(key, groups)
        values = _repeat_kv(value, groups)
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = query.shape[-1] ** -0.5
        logits = torch.matmul(query, keys.transpose(2, 3)).to(torch.float32) * scaling
        gain = _columns(self.gain.to(query.device), kv_len, 0.0)
        logits = scale[:, None, None, :] * logits + gain[:, None, None, :] * logits.abs()
        logits = logits.masked_fill(~visible, -float("inf"))
        weights = torch.softmax(logits, dim=-1).to(values.dtype)
        return torch.matmul(weights, values).transpose(1, 2).contiguous()


_ACTIVE_EDIT: contextvars.ContextVar[LogitEdit | None] = contextvars.ContextVar("adaptvis_logit_edit", default=None)


def active_logit_edit() -> LogitEdit | None:
    """The edit in force for the current attention calls, if any."""
    return _ACTIVE_EDIT.get()


@contextmanager
def attention_logit_edit(edit: LogitEdit | None) -> Iterator[None]:
    """Apply ``edit`` to every ``adaptvis_*`` attention call inside the block (``None``: no edit)."""
    token = _ACTIVE_EDIT.set(edit)
    try:
        yield
    finally:
        _ACTIVE_EDIT.reset(token)
