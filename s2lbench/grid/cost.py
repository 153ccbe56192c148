"""An offline cost estimate for a grid: tokens, FLOPs, GPU-hours on a named GPU class, and checkpoint disk,
per stage and in total (printed by ``s2lbench run CONFIG --dry-run``).

Model sizes come from a small built-in table of known hub models, or from the model's ``config.json`` where
it is on disk (a local folder, or the hub cache), or from the built-in tiny configs; the estimate says which.
FLOPs follow the usual dense-transformer rule: training 6·N per token (8·N with gradient checkpointing), a
forward pass 2·N per token, N the parameter count. Generation is an upper bound: every item produces
``max_new_tokens``, and a hybrid task re-asks every item once. GPU-hours divide FLOPs by the GPU's dense
bf16 peak times an MFU (training and generation separately: decoding is memory-bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.common.files import read_json_object
from s2lbench.errors import ConfigError, DataError
from s2lbench.grid.experiment import chosen_by, grid_cells
from s2lbench.grid.pool_base import pool_base_name
from s2lbench.grid.preflight import hub_cache_dir
from s2lbench.gym.bases import base_model_name
from s2lbench.selection import parse_options, resolve_budget
from s2lbench.signals.signalset import TEXT_EMBEDDING
from s2lbench.signals.stage import PROXY_SIGNALS
from s2lbench.training.models import TINY_CONFIGS
from s2lbench.training.trainer import checkpoint_schedule, planned_steps

#: total parameters (embeddings included) of models the paper configs name, from their hub config.json
KNOWN_MODELS: dict[str, int] = {
    "EleutherAI/pythia-70m": 70_426_624, "EleutherAI/pythia-70m-deduped": 70_426_624,
    "EleutherAI/pythia-160m": 162_322_944, "EleutherAI/pythia-160m-deduped": 162_322_944,
    "EleutherAI/pythia-410m": 405_334_016, "EleutherAI/pythia-410m-deduped": 405_334_016,
    "EleutherAI/pythia-1b": 1_011_781_632, "EleutherAI/pythia-1b-deduped": 1_011_781_632,
    "EleutherAI/pythia-1.4b": 1_414_647_808, "EleutherAI/pythia-2.8b": 2_775_208_960,
    "EleutherAI/pythia-6.9b": 6_857_302_016, "microsoft/phi-2": 2_779_683_840,
    "microsoft/Phi-3-mini-4k-instruct": 3_821_079_552, "gpt2": 124_439_808,
    "meta-llama/Llama-2-7b-hf": 6_738_415_616, "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "sentence-transformers/all-MiniLM-L6-v2": 22_713_216, "minilm": 22_713_216,
}
#: dense bf16 tensor-core peak, FLOP/s (V100 has no bf16: its fp16 peak)
GPUS: dict[str, float] = {"A100-40GB": 312e12, "A100-80GB": 312e12, "H100-80GB": 989e12, "H200": 989e12,
                          "L40S": 362e12, "A10G": 70e12, "V100": 125e12}
DEFAULT_GPU = "A100-80GB"
DEFAULT_MFU = 0.40
DEFAULT_GENERATION_MFU = 0.10
CHARS_PER_TOKEN = 4.0
#: assumed when the pool or test files are not readable here (an hf:// pool offline)
ASSUMED_POOL_TOKENS = 250
ASSUMED_PROMPT_TOKENS = 150
#: test-set sizes of the built-in tasks, used when their files are not readable here
KNOWN_TASK_ITEMS = {"gsm8k": 1319, "math": 5000, "numglue": 1042, "svamp": 1000, "deepmind": 1000, "simuleq": 514,
                    "radiology-indiana": 500, "radiology-mimic": 500}
BYTES_PER_PARAM = 4  # checkpoints are saved from the fp32 master weights


@dataclass(frozen=True)
class ModelSize:
    name: str
    params: int
    source: str


@dataclass
class StageCost:
    stage: str
    count: int
    tokens: float
    flops: float
    gpu_hours: float
    disk_bytes: float
    detail: str = ""


@dataclass
class CostEstimate:
    gpu: str
    mfu: float
    generation_mfu: float
    stages: list[StageCost] = field(default_factory=list)
    models: list[ModelSize] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def total(self) -> StageCost:
        return StageCost("total", sum(s.count for s in self.stages), sum(s.tokens for s in self.stages),
                         sum(s.flops for s in self.stages), sum(s.gpu_hours for s in self.stages),
                         sum(s.disk_bytes for s in self.stages))


def _params_from_config(config: dict[str, Any]) -> int:
    """A dense decoder's parameter count from its config.json (attention 4h², MLP 2 or 3 h·I, embeddings)."""
    h = config.get("hidden_size") or config.get("n_embd") or config.get("d_model")
    layers = config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers")
    for key, value in (("hidden_size", h), ("num_hidden_layers", layers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key!r} (or its alias) is {value!r}, not a positive integer")
    vocab = config.get("vocab_size", 50_000)
    inter = config.get("intermediate_size") or config.get("n_inner") or 4 * h
    for key, value in (("vocab_size", vocab), ("intermediate_size", inter)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key!r} is {value!r}, not a positive integer")
    gated = config.get("model_type") in ("llama", "mistral", "qwen2", "gemma", "phi3", "mixtral")
    tied = config.get("tie_word_embeddings", True)
    return int(layers * (4 * h * h + (3 if gated else 2) * h * inter) + vocab * h * (1 if tied else 2))


def _config_file(name: str) -> tuple[Path, str] | None:
    """The config.json a model name resolves to offline (a local folder's, else the hub cache's), and its origin."""
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path / "config.json", f"config.json in {path}"

    snapshots = hub_cache_dir() / f"models--{name.replace('/', '--')}" / "snapshots"
    if snapshots.is_dir():
        for snap in sorted(snapshots.iterdir()):
            if (snap / "config.json").is_file():
                return snap / "config.json", "config.json in the hub cache"
    return None


def model_size(name: str) -> ModelSize | None:
    """The parameter count of a model name, and where it came from; None when unknown offline. A config.json
    that is there but unreadable, not JSON or without the sizes is a DataError naming it (training would fail
    on it too)."""
    name = base_model_name(name) or pool_base_name(name) or name  # a gym or pool base: its tiny config's size
    if name in TINY_CONFIGS:
        cfg = dict(TINY_CONFIGS[name], vocab_size=1000)
        return ModelSize(name, _params_from_config(cfg), "built-in tiny config (vocabulary ~1,000 assumed)")
    try:
        found = _config_file(name)
    except OSError:  # an unreadable hub cache folder: the name is then as unknown as without one
        found = None
    if found is not None:
        path, source = found
        try:
            return ModelSize(name, _params_from_config(read_json_object(path, "model config")), source)
        except ValueError as e:
            raise DataError(f"cannot size the model: {e}", path=path) from None
    if name in KNOWN_MODELS:
        return ModelSize(name, KNOWN_MODELS[name], "built-in table")
    return None


def _hours(flops: float, gpu_peak: float, mfu: float) -> float:
    return flops / (gpu_peak * mfu) / 3600.0


def _train_tokens(train: Any, rows: int, tokens_per_example: float) -> tuple[float, int]:
    steps = planned_steps(train, rows)
    return steps * train.batch_size * train.grad_accum * min(tokens_per_example, train.max_length), steps


def _subset_rows(budget: float | None, rows: int) -> int:
    """A cell's training rows: the whole pool for the reference (None) or a budget that does not resolve."""
    if budget is None:
        return rows
    try:
        return resolve_budget(budget, rows)
    except Exception:
        return rows


def estimate(runner: Any, report: Any, gpu: str = DEFAULT_GPU, mfu: float = DEFAULT_MFU,
             generation_mfu: float = DEFAULT_GENERATION_MFU, only: list[str] | None = None) -> CostEstimate:
    """The cost of a run from its config and the preflight report (pool rows, test set sizes): the stages
    every cell shares, which a run computes whatever ``only`` picks, and the fine-tunes and generations of
    the cells ``only`` picks (all of them without it)."""
    if gpu not in GPUS:
        raise ConfigError(f"--gpu {gpu!r}: known GPU classes are {', '.join(GPUS)}")
    if not 0 < mfu <= 1 or not 0 < generation_mfu <= 1:
        raise ConfigError("--mfu and --generation-mfu must be in (0, 1]")
    config, peak = runner.config, GPUS[gpu]
    est = CostEstimate(gpu, mfu, generation_mfu)
    est.assumptions.append(f"{gpu}: {peak / 1e12:g} TFLOP/s dense bf16; MFU {mfu:.0%} training, "
                           f"{generation_mfu:.0%} generation")
    rows = report.pool_rows
    if rows is None:
        est.assumptions.append("pool rows unknown here: nothing that scales with the pool is estimated")
        return est
    if report.pool_chars is not None:
        per_example = report.pool_chars / CHARS_PER_TOKEN + 30  # + the Alpaca template
        est.assumptions.append(f"pool: {rows:,} examples, ~{per_example:.0f} tokens each (characters / 4 + template)")
    else:
        per_example = ASSUMED_POOL_TOKENS
        est.assumptions.append(f"pool: {rows:,} examples, ~{per_example} tokens each (assumed; not readable here)")
    sizes: dict[str, ModelSize | None] = {}

    def size(name: str) -> ModelSize | None:
        if name not in sizes:
            try:
                sizes[name] = model_size(name)
            except DataError as e:
                sizes[name] = None
                est.assumptions.append(f"{name}: size unknown ({e}); its stages are left out")
                return None
            if sizes[name] is None:
                est.assumptions.append(f"{name}: size unknown offline (not in the built-in table or a local "
                                       f"config.json); its stages are left out")
            else:
                est.models.append(sizes[name])
        return sizes[name]

    needed = set().union(*(runner.needed_signals(seed) for seed in runner.proxy_seeds()))
    # one proxy run and signal pass per proxy seed whose rows read proxy signals (rows may set proxy_seed)
    n_proxies = sum(bool(runner.needed_signals(seed) & PROXY_SIGNALS) for seed in runner.proxy_seeds())
    proxy = config.proxy
    proxy_signal_flops = 0.0  # proxy training + signal pass: what a compute-matched row's fine-tune adds
    if n_proxies and not proxy.trajectories and not proxy.run_dir and (m := size(proxy.model)):
        train = runner.train_config(proxy.model, proxy.tokenizer, proxy.train)
        tokens, steps = _train_tokens(train, rows, per_example)
        tokens *= n_proxies
        factor = 8 if train.gradient_checkpointing else 6
        n_ckpt = len(checkpoint_schedule(steps, save_every=train.save_every, n_checkpoints=train.n_checkpoints))
        flops = factor * m.params * tokens
        proxy_signal_flops += flops
        est.stages.append(StageCost("proxy training", n_proxies, tokens, flops, _hours(flops, peak, mfu),
                                    n_proxies * max(1, n_ckpt) * m.params * BYTES_PER_PARAM,
                                    f"{proxy.model}, {steps:,} steps, {n_ckpt} checkpoints"))
        pass_tokens = n_proxies * n_ckpt * rows * min(per_example, train.max_length)
        flops = 2 * m.params * pass_tokens
        proxy_signal_flops += flops
        est.stages.append(StageCost("signal pass", n_proxies * n_ckpt, pass_tokens, flops, _hours(flops, peak, mfu),
                                    n_proxies * n_ckpt * rows * 4 * 2, "one forward pass over the pool per checkpoint"))
    if TEXT_EMBEDDING in needed and (m := size(config.signals.text_encoder)):
        tokens = rows * min(per_example, 512)
        flops = 2 * m.params * tokens
        est.stages.append(StageCost("text embeddings", 1, tokens, flops, _hours(flops, peak, mfu), rows * 384 * 4,
                                    config.signals.text_encoder))
    chosen = [cell for cell in grid_cells(config) if chosen_by(cell.cell_id, only)]
    for target in config.targets:
        cells = [cell for cell in chosen if cell.target.name == target.name]
        m = size(target.model) if cells else None
        if m is None:
            continue
        train = runner.train_config(target.model, target.tokenizer, target.train)
        factor = 8 if train.gradient_checkpointing else 6
        n_cells = len(cells)
        tokens = flops = disk = 0.0
        for cell in cells:
            t, steps = _train_tokens(train, _subset_rows(cell.budget, rows), per_example)
            n_ckpt = max(1, len(checkpoint_schedule(steps, save_every=train.save_every,
                                                    n_checkpoints=train.n_checkpoints)))
            tokens += t
            flops += factor * m.params * t
            disk += n_ckpt * m.params * BYTES_PER_PARAM
            if cell.selector is not None and cell.selector.compute_matched:
                # by construction the matched fine-tune spends its row's selection FLOPs on extra steps
                named = next(s for s in config.selectors if s.row == cell.selector.compute_matched)
                named_cls = runner.hooks.selector(named.name)
                if set(named_cls.required_signals(parse_options(named_cls, named.options))) & PROXY_SIGNALS:
                    flops += proxy_signal_flops
                    tokens += proxy_signal_flops / (factor * m.params)
        est.stages.append(StageCost(f"fine-tune {target.name}", n_cells, tokens, flops, _hours(flops, peak, mfu),
                                    disk, f"{target.model}, {n_cells} cells"))
        gen_tokens = written = 0.0
        for task in report.tasks:
            items = task.items if task.items is not None else KNOWN_TASK_ITEMS.get(task.name, 0)
            prompt = task.prompt_chars / CHARS_PER_TOKEN if task.prompt_chars else ASSUMED_PROMPT_TOKENS
            gen_tokens += items * task.passes * (prompt + task.max_new_tokens) * n_cells
            written += items * task.passes * task.max_new_tokens * n_cells
        flops = 2 * m.params * gen_tokens
        est.stages.append(StageCost(f"generation {target.name}", n_cells, gen_tokens, flops,
                                    _hours(flops, peak, generation_mfu), written * CHARS_PER_TOKEN,
                                    "upper bound: every item writes max_new_tokens; hybrid re-asks every item"))
    known = [t.name for t in report.tasks if t.items is None and t.name in KNOWN_TASK_ITEMS]
    unknown = [t.name for t in report.tasks if t.items is None and t.name not in KNOWN_TASK_ITEMS]
    if known:
        est.assumptions.append(f"test sets not readable here, sized from the built-in table: {', '.join(known)}")
    if unknown:
        est.assumptions.append(f"test sets not readable here, left out of generation: {', '.join(unknown)}")
    est.assumptions.append("selection itself (CPU, minutes) and padding overhead are not counted")
    return est


def _human(value: float, unit: str = "") -> str:
    if value == 0:
        return "0"
    exp = max(0, min(int(math.log10(abs(value)) // 3), 7))
    return f"{value / 10 ** (3 * exp):.3g}{['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z'][exp]}{unit}"


def _bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TB"


def render(est: CostEstimate) -> str:
    lines = [f"cost estimate ({est.gpu}, MFU {est.mfu:.0%} training / {est.generation_mfu:.0%} generation):"]
    for m in est.models:
        lines.append(f"  model {m.name}: {m.params / 1e6:,.1f}M parameters ({m.source})")
    header = f"  {'stage':<26} {'count':>6} {'tokens':>10} {'FLOPs':>10} {'GPU-hours':>10} {'disk':>10}"
    lines.append(header)
    for s in [*est.stages, est.total()]:
        if s.stage == "total":
            lines.append("  " + "-" * (len(header) - 2))
        lines.append(f"  {s.stage:<26} {s.count:>6} {_human(s.tokens):>10} {_human(s.flops):>10} "
                     f"{s.gpu_hours:>10.1f} {_bytes(s.disk_bytes):>10}")
    total = est.total()
    lines.append(f"  = {total.gpu_hours / 24:.1f} GPU-days on one {est.gpu}")
    lines += [f"  assumption: {a}" for a in est.assumptions]
    return "\n".join(lines)
