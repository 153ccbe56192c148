"""IFD's response-alone loss and LESS's gradient features against straightforward re-implementations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_signals import make_pool, make_run, tiny_model

from s2lbench.errors import ConfigError
from s2lbench.pool.encoding import IGNORE_INDEX, encode_example
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.signals.gradients import (
    RademacherProjector,
    adam_direction,
    checkpoint_learning_rate,
    gradient_checkpoint_indices,
    load_adam_moments,
    per_example_gradients,
)
from s2lbench.signals.signal_pass import compute_signals
from s2lbench.signals.signalset import SignalSet


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("proxy") / "run")


def dev_pool() -> Pool:
    return Pool([SFTExample(id=f"d{i}", instruction=f"Add up {'ab ' * (i + 1)}?", output=f"{i} #### {i}",
                            source="task-a" if i < 2 else "task-b") for i in range(4)], name="dev")


def explicit_loss(model, ids, labels) -> float:
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss)


def test_ifd_equals_two_explicit_forward_passes(run_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pool = make_pool(10)
    sig = compute_signals(pool, run_dir, tmp_path / "sig", ifd=True, batch_tokens=300, batch_size=3, progress=False)
    alone = sig.get("loss_alone")
    assert alone.shape == (10, 3)
    tok = AutoTokenizer.from_pretrained(run_dir / "checkpoint-30")
    header = tok("### Response:", add_special_tokens=False)["input_ids"]
    for col, step in enumerate((10, 20, 30)):
        model = AutoModelForCausalLM.from_pretrained(run_dir / f"checkpoint-{step}").eval()
        for row, ex in enumerate(pool):
            enc = encode_example(tok, ex, 512)
            response = [t for t in enc.labels if t != IGNORE_INDEX]
            with_instruction = explicit_loss(model, enc.input_ids, enc.labels)
            without = explicit_loss(model, header + response, [IGNORE_INDEX] * len(header) + response)
            assert alone[row, col] == pytest.approx(without, abs=1e-4)
            assert sig.get("loss")[row, col] / alone[row, col] == pytest.approx(with_instruction / without, rel=1e-4)
    assert sig.manifest["cost"]["extra_seconds"]["loss_alone"] > 0
    # a rerun without ifd must not leave the old loss_alone behind as if it were current
    again = compute_signals(pool, run_dir, tmp_path / "sig", progress=False)
    assert not again.has("loss_alone")


def loop_gradients(model, encoded):
    """The reference: one example at a time, unpadded, loss.backward(), as LESS's collect_grads does."""
    rows = []
    for e in encoded:
        model.zero_grad()
        loss = model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels])).loss
        loss.backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    model.zero_grad()
    return torch.stack(rows)


def test_batched_per_example_gradients_equal_a_loop_of_backward_passes():
    from test_signals import char_tokenizer

    tok = char_tokenizer()
    model = tiny_model(len(tok), seed=5).eval()
    encoded = [encode_example(tok, ex, 512) for ex in make_pool(6)]
    width = max(len(e.input_ids) for e in encoded)  # right-padded batch of uneven lengths
    ids = torch.tensor([e.input_ids + [0] * (width - len(e.input_ids)) for e in encoded])
    labels = torch.tensor([e.labels + [IGNORE_INDEX] * (width - len(e.labels)) for e in encoded])
    batched = per_example_gradients(model, ids, labels)
    reference = loop_gradients(model, encoded)
    assert batched.shape == reference.shape
    torch.testing.assert_close(batched, reference, atol=1e-6, rtol=1e-4)


def test_projection_is_seeded_blockwise_and_scaled():
    x = torch.randn(3, 1000)
    small_blocks = RademacherProjector(1000, 64, seed=1, block=128)
    assert small_blocks._full is not None
    lazy = RademacherProjector(1000, 64, seed=1, block=128)
    lazy._full = None  # the on-the-fly path regenerates the same blocks
    torch.testing.assert_close(small_blocks.project(x), lazy.project(x))
    matrix = small_blocks._full
    assert set(torch.unique(matrix * 8).tolist()) == {-1.0, 1.0}  # +-1 / sqrt(64)
    other = RademacherProjector(1000, 64, seed=2, block=128)
    assert not torch.equal(other._full, matrix)


def test_adam_moments_follow_hf_trainer_grouping_and_less_formula(tmp_path):
    from test_signals import char_tokenizer
    from transformers import Trainer

    model = tiny_model(len(char_tokenizer()), seed=3)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": 0.0},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=1e-3, betas=(0.8, 0.95), eps=1e-6)
    for _ in range(2):
        optimizer.zero_grad()
        model(input_ids=torch.tensor([[3, 4, 5, 6]]), labels=torch.tensor([[3, 4, 5, 6]])).loss.backward()
        optimizer.step()
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    moments = load_adam_moments(tmp_path, model)
    expected = torch.cat([optimizer.state[p]["exp_avg"].reshape(-1) for _, p in named])
    torch.testing.assert_close(moments["exp_avg"], expected)
    assert (moments["beta1"], moments["beta2"], moments["eps"]) == (0.8, 0.95, 1e-6)
    g = torch.randn(2, expected.numel())
    m = 0.8 * moments["exp_avg"] + 0.2 * g
    v = 0.95 * moments["exp_avg_sq"] + 0.05 * g * g
    torch.testing.assert_close(adam_direction(g, moments), m / torch.sqrt(v + 1e-6))
    assert load_adam_moments(tmp_path / "nothing", model) is None


def test_learning_rate_weights_and_checkpoint_choice(tmp_path):
    history = [{"step": s, "learning_rate": lr} for s, lr in ((5, 1.0), (10, 3.0), (15, 0.5), (20, 0.25))]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    assert checkpoint_learning_rate(tmp_path, 10, 0) == pytest.approx(2.0)  # mean of the lrs logged in (0, 10]
    assert checkpoint_learning_rate(tmp_path, 22, 20) == pytest.approx(0.25)  # none in (20, 22]: the last before
    assert gradient_checkpoint_indices(12, 4) == [2, 5, 8, 11]
    assert gradient_checkpoint_indices(3, 4) == [0, 1, 2]


def test_gradient_and_dev_signals_through_the_pass_resume_from_parts(run_dir, tmp_path):
    pool, dev = make_pool(6), dev_pool()
    with pytest.raises(ConfigError, match="dev set"):
        compute_signals(pool, run_dir, tmp_path / "x", gradients=True, progress=False)
    options = {"dim": 16, "checkpoints": 2, "batch_size": 4}
    sig = compute_signals(pool, run_dir, tmp_path / "sig", dev=dev, gradients=options, progress=False)
    feats, dev_feats = sig.get("gradients"), sig.get("dev_gradients")
    assert feats.shape == (6, 2, 16) and dev_feats.shape == (4, 2, 16)
    np.testing.assert_allclose(np.linalg.norm(feats.astype(np.float32), axis=-1), 1.0, atol=2e-3)
    assert sig.get("dev_tasks").tolist() == ["task-a", "task-a", "task-b", "task-b"]
    assert sig.get("dev_embedding").shape == (4, sig.get("proxy_embedding").shape[1])
    info = sig.manifest["signals"]["gradients"]
    assert info["checkpoint_steps"] == [20, 30] and info["normalisation"] == ["sgd", "sgd"]  # no optimizer state
    np.testing.assert_allclose(sig.get("checkpoint_lr"), [1.0, 1.0])  # no trainer_state.json: equal weights
    # features are the projection of the loop gradient, normalised
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run_dir / "checkpoint-30")
    model = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoint-30").eval()
    grads = loop_gradients(model, [encode_example(tok, ex, 512) for ex in pool])
    projected = torch.nn.functional.normalize(RademacherProjector(grads.shape[1], 16, 0).project(grads), dim=1)
    np.testing.assert_allclose(feats[:, 1].astype(np.float32), projected.numpy(), atol=2e-3)
    # rerun: every part is cached, nothing recomputed
    parts = sorted(p.name for p in (tmp_path / "sig" / "parts").iterdir())
    again = compute_signals(pool, run_dir, tmp_path / "sig", dev=dev, gradients=options, progress=False)
    assert sorted(p.name for p in (tmp_path / "sig" / "parts").iterdir()) == parts
    assert all(r["cached"] for r in again.manifest["cost"]["per_checkpoint"])
    np.testing.assert_array_equal(again.get("gradients"), feats)
    assert SignalSet.from_dir(tmp_path / "sig").for_pool(6).get("dev_gradients").shape[0] == 4


def test_adam_normalised_features_where_the_checkpoint_keeps_its_moments(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = make_run(tmp_path / "run", steps=(10, 20))
    last = run / "checkpoint-20"
    model = AutoModelForCausalLM.from_pretrained(last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)  # one group, named_parameters order
    optimizer.zero_grad()
    model(input_ids=torch.tensor([[3, 4, 5, 6]]), labels=torch.tensor([[3, 4, 5, 6]])).loss.backward()
    optimizer.step()
    torch.save(optimizer.state_dict(), last / "adam_state.pt")
    pool = make_pool(4)
    sig = compute_signals(pool, run, tmp_path / "sig", dev=dev_pool(), gradients={"dim": 32, "checkpoints": 2},
                          progress=False)
    assert sig.manifest["signals"]["gradients"]["normalisation"] == ["sgd", "adam"]
    tok = AutoTokenizer.from_pretrained(last)
    model = AutoModelForCausalLM.from_pretrained(last).eval()
    grads = loop_gradients(model, [encode_example(tok, ex, 512) for ex in pool])
    direction = adam_direction(grads, load_adam_moments(last, model))
    expected = torch.nn.functional.normalize(RademacherProjector(grads.shape[1], 32, 0).project(direction), dim=1)
    np.testing.assert_allclose(sig.get("gradients")[:, 1].astype(np.float32), expected.numpy(), atol=3e-3)
    # the dev set keeps plain gradients (LESS: SGD for validation)
    dev_enc = [encode_example(tok, ex, 512) for ex in dev_pool()]
    dev_expected = torch.nn.functional.normalize(
        RademacherProjector(grads.shape[1], 32, 0).project(loop_gradients(model, dev_enc)), dim=1)
    np.testing.assert_allclose(sig.get("dev_gradients")[:, 1].astype(np.float32), dev_expected.numpy(), atol=3e-3)
