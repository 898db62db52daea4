"""The lmms-eval side of the AdaptVis wrappers: a thin adapter that batches requests.

lmms-eval hands over ``Instance`` requests; this class groups them into left-padded batches,
builds each checkpoint family's prompt (``prompting``), runs ``decoding.generate`` with the
configured method (``methods``, ``intervention``) and returns the answers in request order. The
rest lives in modules of its own: ``--model_args`` (``model_args``), request -> prompt / image /
generation settings (``lmms_requests``), trace records (``trace``), EOS/pad
(``decoding.eos_and_pad``). It knows nothing about attention; the intervention module knows
nothing about lmms-eval.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import ClassVar

import torch
from accelerate import Accelerator
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from PIL import Image
from tqdm import tqdm

from adaptvis_tasks.families import model_types_of
from model_wrappers.architectures import image_token_id, num_text_layers, prompt_batch
from model_wrappers.decoding import DecodeSettings, SampleOutput, eos_and_pad, generate
from model_wrappers.intervention import enable_image_attention_scaling
from model_wrappers.launcher import launcher_shortfall
from model_wrappers.lmms_eval_convention import LmmsEvalConvention, convention_for  # lmms-eval convention
from model_wrappers.lmms_requests import Prepared, RequestError, decode_settings, request_image, token_stats
from model_wrappers.loading import InputOptions, load_checkpoint
from model_wrappers.methods import MethodArgumentError, MethodConfig
from model_wrappers.model_args import (
    parse_batch_size,
    parse_bool,
    parse_eps,
    parse_pixels,
    refuse_if_set,
    split_model_args,
)
from model_wrappers.trace import TraceWriter, run_fingerprint, trace_record
from model_wrappers.vision import VisionOptions, vision_inputs

__all__ = ["AdaptVisLMM", "RequestError"]


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

    def __init__(
        self,
        pretrained: str,
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
        **method_and_vision: object,
    ) -> None:
        """``method_and_vision``: the method's arguments (method registry) and the vision options."""
        super().__init__()
        method_args, vision_args = split_model_args(self.wrapper_name, AdaptVisLMM.__init__, method_and_vision)
        self.method = MethodConfig.from_model_args(**method_args)
        vision_options = VisionOptions.from_model_args(**vision_args)
        self.batch_size_per_gpu = parse_batch_size(batch_size)
        refuse_if_set("max_batch_size", max_batch_size)
        self.pretrained = str(pretrained)
        self.revision, self.trust_remote_code = revision, parse_bool("trust_remote_code", trust_remote_code)
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
            allowed_model_types=model_types_of(self.wrapper_name),
            wrapper_name=self.wrapper_name,
            device=self._device,
            dtype=dtype,
            attn_implementation=attn_implementation,
            revision=revision,
            trust_remote_code=parse_bool("trust_remote_code", trust_remote_code),
            inputs=InputOptions(
                prompt_style=None if prompt_style is None else str(prompt_style),
                image_backend=str(image_backend),
                min_pixels=parse_pixels("min_pixels", min_pixels),
                max_pixels=parse_pixels("max_pixels", max_pixels),
            ),
            rms_norm_eps=parse_eps(rms_norm_eps),
        )
        self._model = loaded.model
        self.processor = loaded.processor
        self.model_type = loaded.model_type
        self.prompt_style = loaded.prompt_style
        self.input_pipeline = {
            "prompt_style": loaded.prompt_style,
            "tokenizer": loaded.tokenizer_rule,
            "image_processor": type(self.processor.image_processor).__name__,
            "min_pixels": parse_pixels("min_pixels", min_pixels),
            "max_pixels": parse_pixels("max_pixels", max_pixels),
            "rms_norm_eps": parse_eps(rms_norm_eps),
        }
        """What turns a request into model inputs; part of the trace's run fingerprint."""
        self.method.check_layers(num_text_layers(self._model))
        self.vision = vision_options.resolve(self._model, self.processor.tokenizer)
        enable_image_attention_scaling(self._model)
        self.eos_token_ids, self.pad_token_id = eos_and_pad(self._model, self.processor.tokenizer)
        self.dtype_name = str(self._model.dtype).replace("torch.", "")
        self.trace = TraceWriter(trace, rank=self._rank, world_size=self._world_size) if trace else None
        self.resume = parse_bool("resume", resume)
        if self.resume and self.trace is None:
            raise MethodArgumentError("resume=true reuses answers recorded in a trace; give trace=<path> too")
        logger.info(
            f"{self.wrapper_name}: {self.pretrained} ({self.model_type}) on {self._device}, dtype {self.dtype_name}"
            f"{' (dtype=auto)' if str(dtype) == 'auto' else ''}, {self.method.describe()}"
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
        return decode_settings(
            gen_kwargs,
            where,
            self.wrapper_name,
            self.processor.tokenizer,
            self.eos_token_ids,
            self.pad_token_id,
            convention=convention,  # lmms-eval convention: its default max_new_tokens, stop strings, EOS
        )

    def _image_of(self, request: Instance, where: str, convert: bool = True) -> Image.Image:
        return request_image(request, self.task_dict, where, self.wrapper_name, convert=convert)

    def _decode(self, tokens: list[int], until: Sequence[str], convention: LmmsEvalConvention | None = None) -> str:
        if convention is not None:
            return convention.decode(tokens, list(until))
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in until:
            text = text.split(stop, 1)[0]
        return text.strip()

    def _prepare(self, request: Instance) -> Prepared:
        where = f"task {request.args[4]} doc_id {request.args[3]}"
        if (convention := convention_for(self, request.args[4])) is not None:  # lmms-eval's own tasks
            image = convention.image(self._image_of(request, where, convert=False))
            return Prepared(request, where, convention.prompt(request.args[0]), image, convention=convention)
        prompt = self.format_prompt(request.args[0], where)
        return Prepared(request=request, where=where, prompt=prompt, image=self._image_of(request, where))

    def _run_batch(self, prepared: list[Prepared], settings: DecodeSettings, until: list[str]) -> list[SampleOutput]:
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

    def _trace_record(self, item: Prepared, out: SampleOutput, answer: str, until, run: str) -> dict:
        _, _, _, doc_id, task, split = item.request.args
        return trace_record(
            request_args=item.request.args,
            doc=self.task_dict[task][split][doc_id],
            method=self.method,
            out=out,
            answer=answer,
            decode=lambda tokens: self._decode(tokens, until, item.convention),
            run=run,
            input_sha=item.input_sha,
            pretrained=self.pretrained,
            model_type=self.model_type,
            token_stats=item.token_stats,
        )

    def _resumed_answer(self, item: Prepared, run: str) -> str | None:
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
