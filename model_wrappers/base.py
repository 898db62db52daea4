"""The lmms-eval side of the AdaptVis wrappers: arguments, batching, prompts, traces.

A thin adapter: lmms-eval hands over ``Instance`` requests; this class groups them into
left-padded batches, builds each checkpoint family's prompt (``prompting``), runs
``decoding.generate`` with the configured method (``methods``, ``intervention``) and returns
the answers in request order. It knows nothing about attention; the intervention module knows
nothing about lmms-eval.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import torch
from accelerate import Accelerator
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from PIL import Image
from tqdm import tqdm

from adaptvis_tasks.images import to_rgb
from adaptvis_tasks.whatsup import SPLIT_COLUMN
from model_wrappers.architectures import image_token_id, num_text_layers, prompt_batch
from model_wrappers.decoding import DecodeSettings, SampleOutput, generate
from model_wrappers.guards import launcher_shortfall
from model_wrappers.intervention import enable_image_attention_scaling
from model_wrappers.lmms_eval_convention import LmmsEvalConvention, convention_for
from model_wrappers.loading import InputOptions, load_checkpoint
from model_wrappers.methods import MethodArgumentError, MethodConfig
from model_wrappers.trace import TraceWriter, run_fingerprint
from model_wrappers.vision import VisionOptions, vision_inputs

DEFAULT_MAX_NEW_TOKENS = 100
"""Used when a task sets no ``max_new_tokens``; the paper's code generates up to 100 tokens."""


class RequestError(RuntimeError):
    """A request cannot be evaluated; the message names the task and document."""


@dataclass
class _Prepared:
    """One request with its final prompt and RGB image."""

    request: Instance
    where: str
    prompt: str
    image: Image.Image
    token_stats: dict | None = None
    """Set when the batch is tokenized: ``prompt_tokens``, ``image_tokens``, ``input_ids_sha`` (trace fields)."""
    convention: LmmsEvalConvention | None = None
    """lmms-eval's convention for lmms-eval's own tasks; None for this suite's paper tasks."""

    @cached_property
    def input_sha(self) -> str:
        """Hash of exactly what the model sees (prompt text and image pixels); computed once."""
        digest = hashlib.sha256(self.prompt.encode("utf-8"))
        digest.update(f"{self.image.size}{self.image.mode}".encode())
        digest.update(self.image.tobytes())
        return digest.hexdigest()[:16]


def _parse_batch_size(value: object) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise MethodArgumentError(
            f"batch_size={value!r}: give a positive integer (automatic batch sizing is not supported)"
        )
    return int(text)


def _generation_value(gen_kwargs: dict, key: str, default, where: str, parse):
    """One generation setting parsed with ``parse``; a RequestError names the task if it is malformed."""
    value = gen_kwargs.get(key)
    if value is None:
        return default
    try:
        return parse(value)
    except (TypeError, ValueError, MethodArgumentError):
        raise RequestError(f"{where}: generation_kwargs {key}={value!r} is not valid") from None


def token_stats(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_id: int) -> list[dict]:
    """Per row of a left-padded batch: prompt and image token counts and a hash of the unpadded ids.

    ``input_ids_sha`` = first 16 hex digits of sha256 over the ids written as decimal numbers joined
    by commas (e.g. ``"1,32000,29871,13"``), so anyone can recompute it from a tokenizer's output.
    """
    stats = []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
        kept = [token for token, keep in zip(ids, mask, strict=True) if keep]
        stats.append(
            {
                "prompt_tokens": len(kept),
                "image_tokens": sum(1 for token in kept if token == image_id),
                "input_ids_sha": hashlib.sha256(",".join(map(str, kept)).encode()).hexdigest()[:16],
            }
        )
    return stats


def _parse_pixels(name: str, value: object) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise MethodArgumentError(f"{name}={value!r}: give a positive whole number of pixels, e.g. {name}=1003520")
    return int(text)


def _parse_eps(value: object) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MethodArgumentError(f"rms_norm_eps={value!r}: give a small positive number, e.g. 1e-6") from None


def _parse_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise MethodArgumentError(f"{name}={value!r} must be true or false")


def _json_columns(doc: object) -> dict:
    """The task document's columns that JSON can hold as they are (images and bytes left out).

    Lets analysis tools score a trace without the dataset (``adaptvis tune``, docs/TRACE.md).
    """
    if not isinstance(doc, dict):
        return {}
    kept = {}
    for column, value in doc.items():
        try:
            json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[column] = value
    return kept


def _barrier(accelerator: Accelerator) -> None:
    """Wait for every rank (torch.distributed directly: on CPU, Accelerator may not know of the group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    else:
        accelerator.wait_for_everyone()


class AdaptVisLMM(lmms):
    """Base class of ``llava_adaptvis`` and ``qwen2_vl_adaptvis``."""

    is_simple = True
    wrapper_name: ClassVar[str] = "adaptvis"
    allowed_model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        pretrained: str,
        method: str = "baseline",
        alpha: float | None = None,
        alpha1: float | None = None,
        alpha2: float | None = None,
        threshold: float | None = None,
        alphas: str | None = None,
        layers: str | None = None,
        confidence_rule: str = "paper_rounded",
        vision_norm: str | float | None = None,
        vision_layer: str | int | None = None,
        vision_token_order: str = "normal",
        vcd_alpha: float | None = None,
        vcd_beta: float | None = None,
        vcd_noise_step: int | None = None,
        dola_layers: str | None = None,
        repetition_penalty: float | None = None,
        trace: str | None = None,
        resume: bool | str = False,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        attn_implementation: str = "sdpa",
        revision: str | None = None,
        trust_remote_code: bool = False,
        prompt_style: str | None = None,
        image_backend: str = "pil",
        min_pixels: int | str | None = None,
        max_pixels: int | str | None = None,
        rms_norm_eps: float | str | None = None,
        **unknown: object,
    ) -> None:
        super().__init__()
        if unknown:
            raise MethodArgumentError(
                f"{self.wrapper_name}: unknown model argument(s) {', '.join(sorted(unknown))}; allowed: pretrained, "
                "method, alpha, alpha1, alpha2, threshold, alphas, layers, confidence_rule, vcd_alpha, vcd_beta, "
                "vcd_noise_step, dola_layers, repetition_penalty, vision_norm, vision_layer, vision_token_order, "
                "trace, resume, device, dtype, batch_size, attn_implementation, revision, trust_remote_code, "
                "prompt_style, image_backend, min_pixels, max_pixels, rms_norm_eps"
            )
        self.method = MethodConfig.from_model_args(
            method=method,
            alpha=alpha,
            alpha1=alpha1,
            alpha2=alpha2,
            threshold=threshold,
            alphas=alphas,
            layers=layers,
            confidence_rule=confidence_rule,
            vcd_alpha=vcd_alpha,
            vcd_beta=vcd_beta,
            vcd_noise_step=vcd_noise_step,
            dola_layers=dola_layers,
            repetition_penalty=repetition_penalty,
        )
        vision_options = VisionOptions.from_model_args(vision_norm, vision_layer, vision_token_order)
        self.batch_size_per_gpu = _parse_batch_size(batch_size)
        if max_batch_size is not None:
            raise MethodArgumentError(
                f"max_batch_size={max_batch_size!r} only bounds lmms-eval's automatic batch sizing "
                "(--batch_size auto), which these wrappers do not support; remove it and set --batch_size N"
            )
        self.pretrained = str(pretrained)
        self.revision, self.trust_remote_code = revision, _parse_bool("trust_remote_code", trust_remote_code)
        accelerator = Accelerator()
        self.accelerator = accelerator
        # lmms-eval shards documents by the RANK/WORLD_SIZE environment of the launcher; on CPU,
        # `accelerate launch --num_processes N` starts N gloo processes that Accelerator itself
        # reports as a single one, so the environment is the source of truth.
        self._rank = int(os.environ.get("RANK", accelerator.process_index))
        self._world_size = int(os.environ.get("WORLD_SIZE", accelerator.num_processes))
        if (shortfall := launcher_shortfall(os.environ)) is not None:
            logger.warning(f"{self.wrapper_name}: {shortfall}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if self._world_size > 1 and str(device).startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', accelerator.local_process_index))}"
        try:
            self._device = torch.device(device)
        except (RuntimeError, TypeError):
            raise MethodArgumentError(
                f"device={device!r} is not a torch device; use cpu, cuda or cuda:<index>"
            ) from None
        loaded = load_checkpoint(
            self.pretrained,
            allowed_model_types=self.allowed_model_types,
            wrapper_name=self.wrapper_name,
            device=self._device,
            dtype=dtype,
            attn_implementation=attn_implementation,
            revision=revision,
            trust_remote_code=_parse_bool("trust_remote_code", trust_remote_code),
            inputs=InputOptions(
                prompt_style=None if prompt_style is None else str(prompt_style),
                image_backend=str(image_backend),
                min_pixels=_parse_pixels("min_pixels", min_pixels),
                max_pixels=_parse_pixels("max_pixels", max_pixels),
            ),
            rms_norm_eps=_parse_eps(rms_norm_eps),
        )
        self._model = loaded.model
        self.processor = loaded.processor
        self.model_type = loaded.model_type
        self.prompt_style = loaded.prompt_style
        self.input_pipeline = {
            "prompt_style": loaded.prompt_style,
            "tokenizer": loaded.tokenizer_rule,
            "image_processor": type(self.processor.image_processor).__name__,
            "min_pixels": _parse_pixels("min_pixels", min_pixels),
            "max_pixels": _parse_pixels("max_pixels", max_pixels),
            "rms_norm_eps": _parse_eps(rms_norm_eps),
        }
        """What turns a request into model inputs; part of the trace's run fingerprint."""
        self.method.check_layers(num_text_layers(self._model))
        self.vision = vision_options.resolve(self._model, self.processor.tokenizer)
        enable_image_attention_scaling(self._model)
        tokenizer = self.processor.tokenizer
        eos_ids = self._model.generation_config.eos_token_id
        eos_ids = [eos_ids] if isinstance(eos_ids, int) else list(eos_ids or [])
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(tokenizer.eos_token_id)
        self.eos_token_ids = tuple(eos_ids)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.dtype_name = str(self._model.dtype).replace("torch.", "")
        self.trace = TraceWriter(trace, rank=self._rank, world_size=self._world_size) if trace else None
        self.resume = _parse_bool("resume", resume)
        if self.resume and self.trace is None:
            raise MethodArgumentError("resume=true reuses answers recorded in a trace; give trace=<path> too")
        logger.info(
            f"{self.wrapper_name}: {self.pretrained} ({self.model_type}) on {self._device}, {self.method.describe()}"
            f"{' ' + str(self.vision.describe()) if self.vision.options.active else ''}"
        )

    # --- lmms-eval properties ---------------------------------------------------------------
    @property
    def model(self):
        return self._model

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # --- per-family hooks -------------------------------------------------------------------
    def format_prompt(self, context: str, where: str) -> str:
        """The text prompt for one request; subclasses choose the checkpoint family's format."""
        raise NotImplementedError

    # --- requests ---------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(f"{self.wrapper_name} answers generate_until tasks only (no loglikelihood)")

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError(f"{self.wrapper_name} does not support multi-round generation")

    def _settings(
        self, gen_kwargs: dict, where: str, convention: LmmsEvalConvention | None = None
    ) -> tuple[DecodeSettings, list[str]]:
        sampling = _generation_value(gen_kwargs, "do_sample", False, where, lambda v: _parse_bool("do_sample", v))
        temperature = _generation_value(gen_kwargs, "temperature", 0.0, where, float)
        if sampling or temperature > 0:
            raise RequestError(
                f"{where}: {self.wrapper_name} decodes greedily, as the paper; the task asks for sampling "
                f"(do_sample={gen_kwargs.get('do_sample')!r}, temperature={gen_kwargs.get('temperature')!r})"
            )
        if _generation_value(gen_kwargs, "num_beams", 1, where, int) != 1:
            raise RequestError(f"{where}: {self.wrapper_name} decodes greedily; the task asks for beam search")
        until = gen_kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        if not isinstance(until, list) or not all(isinstance(s, str) for s in until):
            raise RequestError(f"{where}: generation_kwargs 'until' must be a string or a list of strings")
        until = [s for s in until if s]
        # lmms-eval's convention (lmms_eval_convention.py): its defaults, stop strings and EOS
        default_tokens = DEFAULT_MAX_NEW_TOKENS if convention is None else convention.default_max_new_tokens
        until = until if convention is None or convention.applies_until else []
        max_new_tokens = _generation_value(gen_kwargs, "max_new_tokens", default_tokens, where, int)
        if max_new_tokens < 1:
            raise RequestError(f"{where}: generation_kwargs max_new_tokens={max_new_tokens} must be at least 1")
        stop = None
        if until:
            tokenizer = self.processor.tokenizer

            def stop(tokens: list[int]) -> bool:
                text = tokenizer.decode(tokens, skip_special_tokens=True)
                return any(s in text for s in until)

        settings = DecodeSettings(
            max_new_tokens=max_new_tokens,
            eos_token_ids=self.eos_token_ids if convention is None else convention.eos_token_ids,
            pad_token_id=self.pad_token_id,
            stop_condition=stop,
        )
        return settings, until

    def _image_of(self, request: Instance, where: str, convert: bool = True) -> Image.Image:
        _, _, doc_to_visual, doc_id, task, split = request.args
        try:
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        except Exception as error:
            raise RequestError(f"{where}: could not load its image: {error}") from error
        visuals = [v for v in (visuals or [])]
        if len(visuals) != 1 or not isinstance(visuals[0], Image.Image):
            raise RequestError(
                f"{where}: {self.wrapper_name} evaluates one image per request; doc_to_visual returned "
                f"{len(visuals)} item(s) of type {sorted({type(v).__name__ for v in visuals})}"
            )
        # The task suite's own conversion rules (16-bit greyscale, palettes, colour keys), also for
        # images that other lmms-eval tasks hand over in memory.
        return to_rgb(visuals[0]) if convert else visuals[0]

    def _decode(self, tokens: list[int], until: Sequence[str], convention: LmmsEvalConvention | None = None) -> str:
        if convention is not None:
            return convention.decode(tokens, list(until))
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in until:
            text = text.split(stop, 1)[0]
        return text.strip()

    def _prepare(self, request: Instance) -> _Prepared:
        where = f"task {request.args[4]} doc_id {request.args[3]}"
        if (convention := convention_for(self, request.args[4])) is not None:  # lmms-eval's own tasks
            image = convention.image(self._image_of(request, where, convert=False))
            return _Prepared(request, where, convention.prompt(request.args[0]), image, convention=convention)
        prompt = self.format_prompt(request.args[0], where)
        return _Prepared(request=request, where=where, prompt=prompt, image=self._image_of(request, where))

    def _run_batch(self, prepared: list[_Prepared], settings: DecodeSettings, until: list[str]) -> list[SampleOutput]:
        processor = self.processor if prepared[0].convention is None else prepared[0].convention.processor
        inputs = processor(
            images=[p.image for p in prepared], text=[p.prompt for p in prepared], padding=True, return_tensors="pt"
        )
        image_id = image_token_id(self._model)
        for item, stats in zip(
            prepared, token_stats(inputs["input_ids"], inputs["attention_mask"], image_id), strict=True
        ):
            item.token_stats = stats
        batch = prompt_batch(self._model, inputs)
        keys = [p.input_sha for p in prepared]
        with vision_inputs(self._model, self.vision, sample_keys=keys):
            return generate(
                self._model, batch, self.method, settings, need_confidence=self.trace is not None, sample_keys=keys
            )

    def _run_fingerprint(self, settings: DecodeSettings, until: list[str]) -> str:
        return run_fingerprint(
            {
                "pretrained": self.pretrained,
                "model_type": self.model_type,
                "dtype": self.dtype_name,
                "inputs": self.input_pipeline,
                "method": self.method.describe(),
                **({"vision": self.vision.describe()} if self.vision.options.active else {}),
                "max_new_tokens": settings.max_new_tokens,
                "until": list(until),
            }
        )

    def _trace_record(self, item: _Prepared, out: SampleOutput, answer: str, until, run: str) -> dict:
        _, _, _, doc_id, task, split = item.request.args
        doc = self.task_dict[task][split][doc_id]
        record = {
            "task": task,
            "split": doc.get(SPLIT_COLUMN) if isinstance(doc, dict) else None,
            "lmms_eval_split": split,
            "doc_id": doc_id,
            "method": self.method.method,
            "confidence": out.confidence,
            "alpha": out.alpha,
            "answer": answer,
            "run": run,
            "input_sha": item.input_sha,
            "pretrained": self.pretrained,
            "model_type": self.model_type,
            "layers": "all" if self.method.layers is None else "|".join(str(i) for i in self.method.layers),
            **(item.token_stats or {}),
        }
        if out.sweep is not None:
            record["answers"] = {
                repr(alpha): self._decode(tokens, until, item.convention) for alpha, tokens in out.sweep.items()
            }
        if out.sweep_confidence is not None:
            record["confidences"] = {repr(alpha): value for alpha, value in out.sweep_confidence.items()}
        record["doc"] = _json_columns(doc)
        return record

    def _resumed_answer(self, item: _Prepared, run: str) -> str | None:
        _, _, _, doc_id, task, split = item.request.args
        record = self.trace.recorded(run, task, split, doc_id)  # keyed by lmms-eval's split name
        if record is not None and record.get("input_sha") == item.input_sha:
            return record["answer"]
        return None

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer every request; batches hold requests with identical generation settings."""
        answers: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            if (request.metadata or {}).get("__padding_only__"):
                # lmms-eval pads ranks to equal request counts; the answer is discarded, and these
                # wrappers run no collective ops, so there is nothing to compute.
                answers[index] = ""
                continue
            key = json.dumps(request.args[1], sort_keys=True, default=str)
            key += "|lmms_eval" if convention_for(self, request.args[4]) is not None else "|paper"
            groups.setdefault(key, []).append(index)
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc=f"{self.wrapper_name} ({self.method.method})")
        resumed = 0
        for indices in groups.values():
            first = requests[indices[0]]
            convention = convention_for(self, first.args[4])
            settings, until = self._settings(
                dict(first.args[1]), f"task {first.args[4]} doc_id {first.args[3]}", convention
            )
            run = self._run_fingerprint(settings, until) if self.trace is not None else ""
            ordered = sorted(indices, key=lambda i: (-len(requests[i].args[0]), i))
            for start in range(0, len(ordered), self.batch_size):
                chunk = ordered[start : start + self.batch_size]
                prepared = [self._prepare(requests[i]) for i in chunk]
                todo = []
                for index, item in zip(chunk, prepared, strict=True):
                    reused = self._resumed_answer(item, run) if self.resume else None
                    if reused is None:
                        todo.append((index, item))
                    else:
                        answers[index] = reused
                        resumed += 1
                if todo:
                    outputs = self._run_batch([item for _, item in todo], settings, until)
                    for (index, item), out in zip(todo, outputs, strict=True):
                        answers[index] = self._decode(out.tokens, until, item.convention)
                        if self.trace is not None:
                            self.trace.write(self._trace_record(item, out, answers[index], until, run))
                progress.update(len(chunk))
        progress.close()
        if self.resume:
            logger.info(f"{self.wrapper_name}: resumed {resumed} of {len(requests)} answers from {self.trace.path}")
        return [a if a is not None else "" for a in answers]

    def clean(self) -> None:
        if self.trace is not None:
            self.trace.close()
            if self._world_size > 1:
                _barrier(self.accelerator)
            merged = self.trace.merge_ranks()
            if merged is not None:
                logger.info(f"trace: merged {self._world_size} rank files into {merged}")
        super().clean()
