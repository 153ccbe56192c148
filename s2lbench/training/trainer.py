"""The one training component: fine-tune any causal LM on a pool with response-only loss, via HF ``Trainer``.

Both the S2L proxy (whose checkpoints the signal pass reads) and every target model train through ``train``.
Run folder (``out_dir``)::

    checkpoint-<step>/   complete HF model dirs (config, weights, tokenizer, s2lbench_checkpoint.json),
                         each renamed into place only once fully written; the newest also holds the
                         optimizer/scheduler/RNG state a resumed run needs
    final/               the final model (+ tokenizer)
    run.json             manifest: config, pool fingerprint, checkpoint steps, status, figures, versions

Calling ``train`` again on the same folder resumes from the newest checkpoint, or returns at once if the
run finished. A folder holding a different pool or config is refused rather than silently mixed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from s2lbench.common import console
from s2lbench.common.atomic import atomic_dir, write_json
from s2lbench.common.fingerprint import config_hash
from s2lbench.common.hub import load_pretrained
from s2lbench.common.provenance import package_versions, training_environment
from s2lbench.errors import ConfigError, S2LBenchError
from s2lbench.pool.encoding import IGNORE_INDEX, encode_example
from s2lbench.pool.records import Pool
from s2lbench.training.models import TINY_CONFIGS, tiny_model
from s2lbench.training.progress import console_trainer

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_INFO = "s2lbench_checkpoint.json"
#: files only the newest checkpoint keeps (what resuming needs); older ones keep just the model
RESUME_STATE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth")

#: what the trainer does not need to know to reproduce a run: changing these does not block a resume.
#: padding_free changes how a batch is laid out, not what it holds or what the loss sums (the tests check the
#: packed and padded losses and gradients agree), so run folders made before the key existed still resume
_NOT_IDENTITY = ("logging_steps", "padding_free")


@dataclass(frozen=True)
class TrainConfig:
    #: hub id, local model dir, path to a .gguf file, or a built-in tiny config ("gym-proxy", ...)
    model: str
    #: tokenizer path or hub id; default: the model's own (required for built-in tiny configs)
    tokenizer: str | None = None
    max_length: int = 512
    learning_rate: float = 2e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    #: "steps": exactly ``total_steps`` optimizer steps whatever the pool size (the paper's fixed schedule;
    #: smaller subsets take more epochs). "epochs": ``epochs`` passes over the pool.
    schedule: Literal["steps", "epochs"] = "steps"
    total_steps: int | None = None
    epochs: float = 3.0
    #: checkpoints every k optimizer steps, or N evenly spaced over the run (the last one at the final step)
    save_every: int | None = None
    n_checkpoints: int | None = None
    seed: int = 42
    bf16: Literal["auto"] | bool = "auto"
    template: str = "alpaca"
    logging_steps: int = 10
    gradient_checkpointing: bool = False
    #: batch examples of similar length (transformers' LengthGroupedSampler: shuffled mega-batches sorted by
    #: length), so one long row does not pad a whole batch; same seed, same order
    group_by_length: bool = False
    #: padding-free batches (PackCollator): each batch's examples packed into rows of max_length tokens, with
    #: attention kept inside each example. "auto": on when a probe shows the model takes packed input
    #: (otherwise padded, with a warning); true: required (an error if the model cannot); false: padded
    padding_free: Literal["auto"] | bool = "auto"
    revision: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self):
        if self.schedule == "steps" and (self.total_steps is None or self.total_steps < 1):
            raise ConfigError("total_steps: the 'steps' schedule needs total_steps >= 1 (or use schedule='epochs')")
        if self.schedule not in ("steps", "epochs"):
            raise ConfigError(f"schedule: {self.schedule!r} is not 'steps' or 'epochs'")
        if self.schedule == "epochs" and self.epochs <= 0:
            raise ConfigError(f"epochs: {self.epochs} must be positive")
        if self.save_every is not None and self.n_checkpoints is not None:
            raise ConfigError("save_every and n_checkpoints are exclusive; set one")
        for key in ("save_every", "n_checkpoints"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key}: {value} must be >= 1")
        for key in ("batch_size", "grad_accum", "max_length", "logging_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: {getattr(self, key)} must be >= 1")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate: {self.learning_rate} must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio: {self.warmup_ratio} must be in [0, 1)")
        if self.padding_free not in ("auto", True, False):
            raise ConfigError(f"padding_free: {self.padding_free!r} is not 'auto', true or false")


@dataclass
class TrainResult:
    model_dir: Path
    checkpoints: list[tuple[int, Path]]
    wall_seconds: float
    flops: float
    train_tokens: int
    total_steps: int
    epochs: float
    n_params: int
    final_loss: float | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    #: where it trained (``provenance.training_environment``); two entries when it resumed somewhere else
    environments: list[dict[str, Any]] = field(default_factory=list)


def steps_per_epoch(n_examples: int, batch_size: int, grad_accum: int) -> int:
    return max(1, math.ceil(n_examples / (batch_size * grad_accum)))


def planned_steps(config: TrainConfig, n_examples: int) -> int:
    """Optimizer steps the run takes: fixed for 'steps'; ceil(epochs x steps per epoch) for 'epochs'."""
    if config.schedule == "steps":
        return int(config.total_steps)
    return max(1, math.ceil(config.epochs * steps_per_epoch(n_examples, config.batch_size, config.grad_accum)))


def planned_epochs(config: TrainConfig, n_examples: int) -> float:
    """Passes over the pool the run makes (a fixed schedule on a 10% subset makes 10x the passes)."""
    examples_seen = planned_steps(config, n_examples) * config.batch_size * config.grad_accum
    return examples_seen / n_examples


def checkpoint_schedule(total_steps: int, *, save_every: int | None, n_checkpoints: int | None) -> list[int]:
    """Steps at which to save: multiples of ``save_every``, or ``n`` evenly spaced ending at ``total_steps``."""
    if save_every:
        return list(range(save_every, total_steps + 1, save_every))
    if n_checkpoints:
        return sorted({max(1, round(total_steps * i / n_checkpoints)) for i in range(1, n_checkpoints + 1)})
    return []


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """(step, dir) of every complete checkpoint in a run folder (ours or a plain HF Trainer output), by step."""
    found = []
    for d in Path(out_dir).glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = d.name[len(CHECKPOINT_PREFIX):]
        if d.is_dir() and suffix.isdigit() and (d / "config.json").exists():
            found.append((int(suffix), d))
    return sorted(found)


# ---------------------------------------------------------------------------------------------- loading


def resolve_bf16(setting: Literal["auto"] | bool) -> bool:
    import torch

    if setting != "auto":
        return bool(setting)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # CPU autocast to bf16 pays off only with native bf16 kernels (AVX512-BF16 / AMX). Without them it was
    # measured 3-4x *slower* than fp32 for the gym's tiny models on the 2-core dev box (AVX-512, no BF16).
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def _split_gguf(model: str) -> tuple[str, str | None]:
    """A ``.gguf`` file path -> (its folder, its file name) for ``from_pretrained(folder, gguf_file=name)``."""
    if model.lower().endswith(".gguf"):
        path = Path(model)
        return str(path.parent), path.name
    return model, None


def drop_gguf_quantizer(model: Any) -> Any:
    """GGUF weights arrive dequantized (dense), but the model keeps a GGUF quantizer marker that makes
    ``save_pretrained`` and ``Trainer`` refuse it. The dense weights are ordinary; drop the marker."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if attr in vars(model):
            delattr(model, attr)
    return model


def load_tokenizer(config: TrainConfig):
    from transformers import AutoTokenizer

    if config.tokenizer is None and config.model in TINY_CONFIGS:
        raise ConfigError(f"model {config.model!r} is a built-in tiny config: pass tokenizer= (e.g. the "
                          "tokenizer/ folder that `s2lbench gym build` wrote)")
    source, gguf_file = _split_gguf(config.tokenizer or config.model)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    elif config.revision and config.tokenizer is None:
        kwargs["revision"] = config.revision
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source, "tokenizer", **kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(config: TrainConfig, tokenizer: Any):
    """An ``AutoModelForCausalLM`` from a hub id / local dir / .gguf file, or a fresh built-in tiny model."""
    from transformers import AutoModelForCausalLM

    if config.model in TINY_CONFIGS:
        return tiny_model(config.model, tokenizer, seed=config.seed)
    import torch

    source, gguf_file = _split_gguf(config.model)
    # fp32 master weights whatever the checkpoint's config says (Phi-2 and Pythia say float16, which dtype
    # "auto" would train in); ``bf16`` then sets the compute precision (autocast), as the S2L paper trains
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code, "dtype": torch.float32}
    if gguf_file:
        if not Path(config.model).is_file():
            raise ConfigError(f"model: GGUF file {config.model!r} not found")
        kwargs["gguf_file"] = gguf_file
    if config.revision:
        kwargs["revision"] = config.revision
    model = load_pretrained(AutoModelForCausalLM.from_pretrained, source, "model", **kwargs)
    if gguf_file:
        drop_gguf_quantizer(model)
    return model


# ---------------------------------------------------------------------------------------------- data


class EncodedPool:
    """A map-style dataset of prompt-masked encodings (shared with the signal pass via ``encode_example``)."""

    def __init__(self, pool: Pool, tokenizer: Any, max_length: int, template: str):
        self.items = [encode_example(tokenizer, ex, max_length, template) for ex in pool]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        enc = self.items[i]
        return {"input_ids": enc.input_ids, "labels": enc.labels}

    def mean_tokens(self) -> float:
        return sum(len(e.input_ids) for e in self.items) / max(1, len(self.items))


class PadCollator:
    """Right-pad a batch to its longest sequence; padded labels are ignored by the loss."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            labels[row, :n] = torch.tensor(f["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class PackCollator:
    """Pack a batch's examples into rows of at most ``capacity`` tokens (first fit, longest first).

    No attention mask is returned: position ids restart at 0 for every example, from which transformers
    builds a block-diagonal causal mask (``masking_utils.find_packed_sequence_indices``), so no token attends
    across examples. Each example's first label becomes -100: in a padded row position 0 is never a target
    (the loss shifts labels by one), and here it would otherwise be the target of the previous example's last
    token. The loss therefore sums the same (logit, target) pairs as ``PadCollator``'s and Trainer counts the
    same ``num_items_in_batch``. A row shorter than the widest is padded at its end; the padding gets its own
    positions from 0 (a segment nothing attends into) and -100 labels.
    """

    def __init__(self, pad_token_id: int, capacity: int):
        self.pad_token_id = pad_token_id
        self.capacity = capacity

    def bins(self, lengths: list[int]) -> list[list[int]]:
        """First-fit decreasing: longest example first, each into the first row with room for it, else a new
        row (ties keep batch order). The step's examples are the same as in order; only their layout changes,
        and the loss is a sum over examples. Placing the long ones first leaves fewer, fuller rows than
        first-fit in batch order (gym pool, batch 64, rows of 256: see docs/training.md)."""
        rows: list[list[int]] = []
        room: list[int] = []
        for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
            n = lengths[i]
            for row, free in enumerate(room):
                if n <= free:
                    rows[row].append(i)
                    room[row] -= n
                    break
            else:
                rows.append([i])
                room.append(self.capacity - n)
        return rows

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        lengths = [len(f["input_ids"]) for f in features]
        rows = self.bins(lengths)
        width = max(sum(lengths[i] for i in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.empty((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                n = lengths[i]
                ids[r, at:at + n] = torch.tensor(features[i]["input_ids"])
                labels[r, at + 1:at + n] = torch.tensor(features[i]["labels"][1:])
                positions[r, at:at + n] = torch.arange(n)
                at += n
            positions[r, at:] = torch.arange(width - at)
        # with a cache (models default to use_cache=True, in training too) transformers skips the packed-sequence
        # mask and attention silently crosses examples
        return {"input_ids": ids, "labels": labels, "position_ids": positions, "use_cache": False}


def packing_problem(model: Any, dataset: EncodedPool, pad_token_id: int) -> str | None:
    """Why ``model`` cannot train on ``PackCollator`` batches, or None if it can.

    A probe rather than a list of architectures: two of the pool's examples (the first two, cut to 24
    tokens) go through the model padded and packed; packed input is taken only if every real token's logits
    agree. A model that ignores ``position_ids``, builds its own mask, or lets attention cross examples
    (transformers does when a KV cache is active) fails it; so does one whose forward rejects the inputs.
    """
    import torch

    features = [{k: v[:24] for k, v in dataset[i].items()} for i in (0, min(1, len(dataset) - 1))]
    padded = PadCollator(pad_token_id)(features)
    packed = PackCollator(pad_token_id, capacity=sum(len(f["input_ids"]) for f in features))(features)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            want = model(**{k: v.to(device) for k, v in padded.items() if k != "labels"}).logits.float()
            got = model(**{k: v.to(device) if hasattr(v, "to") else v for k, v in packed.items()
                           if k != "labels"}).logits.float()
    except Exception as e:  # any refusal of the packed inputs means: pad
        return f"its forward rejects packed inputs ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    finally:
        model.train(was_training)
    loose = next(model.parameters()).dtype in (torch.float16, torch.bfloat16)
    at, worst = 0, 0.0
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        scale = max(1.0, float(want[row, :n].abs().max()))
        worst = max(worst, float((want[row, :n] - got[0, at:at + n]).abs().max()) / scale)
        at += n
    if worst > (5e-2 if loose else 1e-3):
        return f"packed logits differ from padded ones (max relative difference {worst:.2g}): attention crosses examples"
    return None


def choose_collator(config: TrainConfig, model: Any, dataset: EncodedPool, pad_token_id: int):
    """``PackCollator`` when ``padding_free`` allows it and the model passes the probe, else ``PadCollator``."""
    if config.padding_free is False:
        log.info("padding_free false: batches padded to their longest row")
        return PadCollator(pad_token_id)
    problem = packing_problem(model, dataset, pad_token_id)
    if problem is None:
        log.info("padding-free: each batch's %d examples packed into rows of at most %d tokens (attention kept "
                 "inside each example)", config.batch_size, config.max_length)
        return PackCollator(pad_token_id, capacity=config.max_length)
    if config.padding_free is True:
        raise ConfigError(f"padding_free: model {config.model!r} cannot train on packed batches: {problem}; "
                          "set padding_free to auto or false")
    log.warning("padding-free training is off for %s: %s; batches are padded instead", config.model, problem)
    return PadCollator(pad_token_id)


# ---------------------------------------------------------------------------------------------- run folder


def _identity(config: TrainConfig, out_dir: Path | None = None) -> dict[str, Any]:
    identity = {k: v for k, v in asdict(config).items() if k not in _NOT_IDENTITY}
    if out_dir is not None:
        # a local model or tokenizer (a stage beside this run's, a gym's tokenizer) counts by where it sits
        # relative to the run folder, however it was spelled (absolute, or relative to the working directory),
        # so a cache moved or copied whole, or resumed from another directory, still resumes its unfinished runs
        for key in ("model", "tokenizer"):
            value = identity.get(key)
            if isinstance(value, str) and Path(value).exists():
                identity[key] = os.path.relpath(Path(value).absolute(), Path(out_dir).absolute())
    return identity


def config_key(config: TrainConfig, out_dir: Path | None = None) -> str:
    """The hash a run folder's manifest keys its training config on (resumes check it); with ``out_dir``,
    local model and tokenizer paths count relative to that folder."""
    return config_hash(_identity(config, out_dir))


class _Manifest:
    """``run.json``, rewritten atomically after every change."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data
        self.writes = process_rank()[0] == 0  # under DDP rank 0 alone writes the run folder

    @classmethod
    def open(cls, out_dir: Path, config: TrainConfig, pool: Pool) -> _Manifest:
        path = out_dir / "run.json"
        fingerprint = pool.fingerprint()
        identity = config_key(config, out_dir)
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise S2LBenchError(f"{path}: unreadable run manifest ({e.msg}); remove the folder to retrain") from None
            if data.get("pool_fingerprint") != fingerprint:
                raise ConfigError(f"{out_dir}: this run folder was trained on pool {data.get('pool_fingerprint')}, "
                                  f"not {fingerprint}; use another --out")
            # a folder written before relative spellings counted relative to it keyed them as spelled
            if data.get("config_hash") not in (identity, config_key(config)):
                raise ConfigError(f"{out_dir}: this run folder was made with a different training config; "
                                  "use another --out (or the same settings to resume)")
            data["config"] = asdict(config)
            # the folder is the truth: a checkpoint renamed into place just before a kill still counts
            data["checkpoint_steps"] = [step for step, _ in list_checkpoints(out_dir)]
            return cls(path, data)
        return cls(path, {"status": "running", "pool_fingerprint": fingerprint, "pool_size": len(pool),
                          "pool_name": pool.name, "config": asdict(config), "config_hash": identity,
                          "checkpoint_steps": [], "wall_seconds": 0.0, "versions": package_versions(), "evals": {}})

    def save(self) -> None:
        if self.writes:
            write_json(self.path, self.data)


def _result_from_manifest(out_dir: Path, data: dict[str, Any]) -> TrainResult:
    return TrainResult(model_dir=out_dir / "final",
                       checkpoints=[(s, out_dir / f"{CHECKPOINT_PREFIX}{s}") for s in data["checkpoint_steps"]],
                       wall_seconds=data["wall_seconds"], flops=data["flops"], train_tokens=data["train_tokens"],
                       total_steps=data["total_steps"], epochs=data["epochs"], n_params=data["n_params"],
                       final_loss=data.get("final_loss"), log_history=data.get("log_history", []),
                       environments=list(data.get("environments", [])))


def _record_environment(manifest: _Manifest, out_dir: Path, use_bf16: bool) -> None:
    """Append this process's training environment to run.json's ``environments`` (one entry unless a run
    resumed somewhere else, which is allowed but said: its weights then mix two environments)."""
    environment = training_environment(use_bf16)
    seen = manifest.data.setdefault("environments", [])
    if seen and environment not in seen:
        log.warning("%s: resuming in a different environment (%s) than it started in (%s); run.json records both",
                    out_dir, _describe_environment(environment), _describe_environment(seen[-1]))
    if environment not in seen:
        seen.append(environment)


def trained_environments(run_dir: str | Path) -> list[dict[str, Any]]:
    """The environments a finished run folder trained in, from its run.json. Runs written before these were
    recorded give their precision alone; a folder without a readable run.json gives none."""
    try:
        data = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("environments"), list):
        return data["environments"]
    return [{"precision": "bf16" if data["bf16"] else "fp32"}] if isinstance(data.get("bf16"), bool) else []


def _describe_environment(environment: dict[str, Any]) -> str:
    return f"{environment['device']}, {environment['precision']}, {environment['threads']} threads"


def _make_callback(out_dir: Path, staging: Path, save_steps: set[int], manifest: _Manifest, config: TrainConfig,
                   mean_tokens: float, tokens_per_step: float, eval_hook: Callable | None, started: float):
    from transformers import TrainerCallback

    class S2LCallback(TrainerCallback):
        """Saves on s2lbench's schedule, moves each checkpoint into place atomically, logs throughput."""

        def __init__(self):
            self.window_start = time.perf_counter()
            self.window_step = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in save_steps:
                control.should_save = True
            return control

        def on_save(self, args, state, control, **kwargs):
            wait_for_everyone()  # every rank has written its part of the staged checkpoint (its RNG state)
            if not state.is_world_process_zero:
                return control
            step = state.global_step
            staged = staging / f"{CHECKPOINT_PREFIX}{step}"
            write_json(staged / CHECKPOINT_INFO, {"step": step, "pool_fingerprint": manifest.data["pool_fingerprint"],
                                                  "config": asdict(config)})
            final = out_dir / staged.name
            if final.exists():
                shutil.rmtree(final)
            os.replace(staged, final)  # same filesystem: the checkpoint appears complete or not at all
            for _old_step, old in list_checkpoints(out_dir):
                if old != final:
                    for name in RESUME_STATE_FILES:
                        (old / name).unlink(missing_ok=True)
                    for per_rank in old.glob("rng_state_*.pth"):  # DDP: one RNG state per rank
                        per_rank.unlink()
            steps = sorted(set(manifest.data["checkpoint_steps"]) | {step})
            manifest.data["checkpoint_steps"] = steps
            manifest.data["wall_seconds"] = manifest.data.get("wall_seconds_before", 0.0) + time.time() - started
            manifest.save()
            if eval_hook is not None:
                metrics = eval_hook(step, final)
                if metrics is not None:
                    manifest.data["evals"][str(step)] = metrics
                    manifest.save()
            log.info("checkpoint %d saved to %s", step, final)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs or not state.is_world_process_zero:
                return
            now = time.perf_counter()
            if self.window_step is None:
                self.window_step = state.global_step - args.logging_steps
            steps = max(1, state.global_step - self.window_step)
            seconds = max(1e-9, now - self.window_start)
            self.window_start, self.window_step = now, state.global_step
            log.info("step %d/%d  loss %.4f  lr %.2e  %.2f steps/s  %.0f tokens/s  %.1f examples/s",
                     state.global_step, state.max_steps, logs["loss"], logs.get("learning_rate", float("nan")),
                     steps / seconds, steps * tokens_per_step / seconds,
                     steps * config.batch_size * config.grad_accum / seconds)

    return S2LCallback()


# ---------------------------------------------------------------------------------------------- processes


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process: set by ``torchrun`` / ``accelerate launch``; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def split_global_batch(config: TrainConfig, world_size: int, n_gpu: int) -> int:
    """The per-device batch for ``config.batch_size``, which is the *global* batch of one micro-step.

    Under DDP each of ``world_size`` processes takes a share; a single process that sees several GPUs is
    wrapped by Trainer in DataParallel, which multiplies the per-device batch by ``n_gpu``, so it takes a
    share too. Either way an optimizer step sees ``batch_size x grad_accum`` examples, as configured (and as
    the schedule, the epochs and the FLOPs assume), whatever the machine.
    """
    shards = world_size * max(1, n_gpu)
    if config.batch_size % shards:
        raise ConfigError(f"batch_size: {config.batch_size} (the global batch) does not split evenly over "
                          f"{world_size} process(es) x {max(1, n_gpu)} GPU(s); use a multiple of {shards}")
    if n_gpu > 1:
        log.warning("one process sees %d GPUs: Trainer runs DataParallel with the global batch %d split %d ways; "
                    "DDP is faster: accelerate launch --num_processes %d ... (docs/scale-out.md)",
                    n_gpu, config.batch_size, n_gpu, n_gpu)
    return config.batch_size // shards


def check_global_batch(args: Any, config: TrainConfig) -> None:
    """Refuse to train if Trainer's effective batch is not the configured one (whatever wrapped the model)."""
    effective = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
    if effective != config.batch_size * config.grad_accum:
        raise S2LBenchError(f"training would see {effective} examples per step, not batch_size x grad_accum = "
                            f"{config.batch_size * config.grad_accum} ({args.world_size} processes, {args.n_gpu} GPUs "
                            "per process); launch one process per GPU with accelerate launch")


def wait_for_everyone() -> None:
    """A barrier across DDP processes (no-op in one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# ---------------------------------------------------------------------------------------------- train


def train(pool: Pool, config: TrainConfig, out_dir: str | Path, *,
          eval_hook: Callable[[int, Path], dict[str, Any] | None] | None = None, label: str | None = None) -> TrainResult:
    """Fine-tune ``config.model`` on ``pool`` (loss on response tokens only) and write the run folder.

    ``eval_hook(step, checkpoint_dir)`` runs after each checkpoint; a dict it returns is stored in run.json.
    ``label`` names the model in the log as the user knows it (``target target-l (gym-base:gym-target-l)``);
    by default ``config.model``. The steps show on the console's status line.
    """
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    if len(pool) == 0:
        raise ConfigError("train: the pool is empty")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest.open(out_dir, config, pool)
    if manifest.data["status"] == "finished" and (out_dir / "final" / "config.json").exists():
        log.info("%s: run already finished; nothing to do", out_dir)
        return _result_from_manifest(out_dir, manifest.data)

    set_seed(config.seed)
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer)
    dataset = EncodedPool(pool, tokenizer, config.max_length, config.template)
    total = planned_steps(config, len(pool))
    epochs = planned_epochs(config, len(pool))
    save_steps = set(checkpoint_schedule(total, save_every=config.save_every, n_checkpoints=config.n_checkpoints))
    tokens_per_step = dataset.mean_tokens() * config.batch_size * config.grad_accum
    n_params = sum(p.numel() for p in model.parameters())
    use_bf16 = resolve_bf16(config.bf16)
    what = label or config.model
    log.info("training %s (%.2fM params) on %s (%d examples): %d steps (%.2f epochs), batch %d x %d, lr %g %s, "
             "bf16 %s, checkpoints at %s", what, n_params / 1e6, pool.name, len(pool), total, epochs,
             config.batch_size, config.grad_accum, config.learning_rate, config.lr_scheduler, use_bf16,
             sorted(save_steps) or "none")

    rank, world = process_rank()
    staging = out_dir / ".staging"
    if rank == 0:
        shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed save are never trusted
    args = TrainingArguments(
        output_dir=str(staging), max_steps=total, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=math.ceil(total * config.warmup_ratio),
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps, save_strategy="no", report_to=[], seed=config.seed,
        data_seed=config.seed, bf16=use_bf16, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True,  # the console shows the steps
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )
    args.per_device_train_batch_size = split_global_batch(config, world, args.n_gpu)
    check_global_batch(args, config)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    manifest.data.update(total_steps=total, epochs=epochs, n_params=n_params, bf16=use_bf16,
                         planned_checkpoint_steps=sorted(save_steps), processes=world, gpus_per_process=args.n_gpu,
                         per_device_batch=args.per_device_train_batch_size)
    _record_environment(manifest, out_dir, use_bf16)
    manifest.data["wall_seconds_before"] = manifest.data.get("wall_seconds", 0.0)
    manifest.save()
    started = time.time()
    callback = _make_callback(out_dir, staging, save_steps, manifest, config, dataset.mean_tokens(),
                              tokens_per_step, eval_hook, started)
    resume_from = _resumable_checkpoint(out_dir)
    trainer_class = Trainer
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
        # Trainer's own resume loads the raw state dict, which misses renamed keys (GPT-NeoX saves its head
        # as embed_out but names it lm_head in memory); from_pretrained applies the key mapping.
        model = _load_checkpoint_weights(model, resume_from)
        trainer_class = _weights_preloaded_trainer()
    collator = choose_collator(config, model, dataset, tokenizer.pad_token_id)
    manifest.data["padding_free"] = isinstance(collator, PackCollator)
    manifest.save()
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, data_collator=collator,
                            processing_class=tokenizer, callbacks=[callback])
    progress = console.Activity(console.activity_name("train"), total, "steps")
    console_trainer(trainer, progress)
    with console.showing(progress):
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    if trainer.is_world_process_zero():
        with atomic_dir(out_dir / "final") as tmp:
            trainer.save_model(str(tmp))
            tokenizer.save_pretrained(tmp)
        shutil.rmtree(staging, ignore_errors=True)
    wall = manifest.data["wall_seconds_before"] + time.time() - started
    train_tokens = int(round(total * tokens_per_step))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    manifest.data.update(status="finished", wall_seconds=wall, train_tokens=train_tokens,
                         flops=6.0 * n_params * train_tokens, final_loss=losses[-1] if losses else None,
                         loop_seconds=output.metrics.get("train_runtime"),
                         train_loss=output.training_loss, log_history=trainer.state.log_history)
    manifest.data.pop("wall_seconds_before", None)
    manifest.save()
    wait_for_everyone()  # no rank returns before the final model and manifest exist
    log.info("finished training %s on %s in %.1fs: final model in %s", what, pool.name, wall, out_dir / "final")
    return _result_from_manifest(out_dir, manifest.data)


def _load_checkpoint_weights(model: Any, checkpoint: Path) -> Any:
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=next(model.parameters()).dtype)
    model.load_state_dict(loaded.state_dict())
    return model


def _weights_preloaded_trainer():
    from transformers import Trainer

    class WeightsPreloadedTrainer(Trainer):
        """Resumes optimizer, scheduler, RNG and data position from a checkpoint whose weights are loaded."""

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            return None

    return WeightsPreloadedTrainer


def _resumable_checkpoint(out_dir: Path) -> Path | None:
    """The newest checkpoint that carries optimizer state (what Trainer needs to continue exactly)."""
    for _step, path in reversed(list_checkpoints(out_dir)):
        if (path / "trainer_state.json").exists() and (path / "optimizer.pt").exists():
            return path
    return None
