"""Padding-free training: packed batches hold the same examples, give the padded path's loss and gradients,
never let attention cross examples, and train (and resume) like the padded path."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from s2lbench.errors import ConfigError
from s2lbench.gym import GymConfig, build_gym
from s2lbench.pool.encoding import IGNORE_INDEX
from s2lbench.pool.records import Pool
from s2lbench.training.models import tiny_model
from s2lbench.training.trainer import (
    EncodedPool,
    PackCollator,
    PadCollator,
    TrainConfig,
    list_checkpoints,
    packing_problem,
    train,
)

#: rows of 200 tokens hold one to four of the (at most 96-token) examples below
CAPACITY = 200


@pytest.fixture(scope="module")
def gym(tmp_path_factory):
    from s2lbench.pool.loaders import load_local

    paths = build_gym(tmp_path_factory.mktemp("gym"), GymConfig.small(pool_size=300, test_size=5))
    return load_local(paths.pool), str(paths.tokenizer)


@pytest.fixture(scope="module")
def tokenizer(gym):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gym[1])


@pytest.fixture(scope="module")
def features(gym, tokenizer):
    dataset = EncodedPool(Pool(gym[0][:12]), tokenizer, 96, "alpaca")  # some rows truncated to 96 tokens
    return [dataset[i] for i in range(len(dataset))]


def tiny_config(gym, **overrides) -> TrainConfig:
    base = TrainConfig(model="gym-proxy", tokenizer=gym[1], total_steps=4, batch_size=4, learning_rate=3e-3,
                       max_length=128, logging_steps=1, bf16=False, seed=7)
    return replace(base, **overrides)


def unpack(batch) -> list[list[int]]:
    """The examples of a packed batch, row by row, split where the position ids restart."""
    found = []
    for ids, pos in zip(batch["input_ids"].tolist(), batch["position_ids"].tolist(), strict=True):
        for token, p in zip(ids, pos, strict=True):
            if p == 0:
                found.append([])
            found[-1].append(token)
    return found


def loss_and_grads(model, batch):
    """The loss as Trainer computes it (summed over the step's targets, divided by their count) and its grads."""
    model.zero_grad()
    n_items = (batch["labels"][..., 1:] != IGNORE_INDEX).sum()
    loss = model(**batch, num_items_in_batch=n_items).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def first_fit_in_order(lengths: list[int], capacity: int) -> list[list[int]]:
    rows: list[list[int]] = []
    for i, n in enumerate(lengths):
        for row in rows:
            if sum(lengths[j] for j in row) + n <= capacity:
                row.append(i)
                break
        else:
            rows.append([i])
    return rows


def test_first_fit_decreasing_keeps_every_example_once(tokenizer, features):
    collator = PackCollator(tokenizer.pad_token_id, capacity=CAPACITY)
    lengths = [len(f["input_ids"]) for f in features]
    rows = collator.bins(lengths)
    assert sorted(i for row in rows for i in row) == list(range(len(features)))
    assert all(sum(lengths[i] for i in row) <= CAPACITY for row in rows)
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))  # longest first, ties in batch order
    assert all(row == sorted(row, key=order.index) for row in rows)
    for pos, i in enumerate(order):  # first fit: no earlier row had room when example i was placed
        placed = set(order[:pos])
        row = next(r for r, members in enumerate(rows) if i in members)
        for earlier in range(row):
            assert sum(lengths[j] for j in rows[earlier] if j in placed) + lengths[i] > CAPACITY
    # decreasing needs no more rows than first fit in batch order
    assert len(rows) <= len(first_fit_in_order(lengths, CAPACITY))
    batch = collator(features)
    assert batch["input_ids"].shape[0] == len(rows) < len(features)
    by_row = [[features[i]["input_ids"] for i in row] for row in rows]
    real = [ex for row in by_row for ex in row]
    unpacked = unpack(batch)
    # the unpacked segments are the examples (plus padding tails, which are pad tokens only)
    assert [seg for seg in unpacked if seg in real] == real
    assert all(set(seg) == {tokenizer.pad_token_id} for seg in unpacked if seg not in real)
    assert "attention_mask" not in batch and batch["use_cache"] is False
    # every example's first label is ignored; the rest are the example's own labels
    flat_labels = batch["labels"].flatten().tolist()
    flat_pos = batch["position_ids"].flatten().tolist()
    assert all(label == IGNORE_INDEX for label, p in zip(flat_labels, flat_pos, strict=True) if p == 0)
    n_targets = sum(sum(1 for t in f["labels"][1:] if t != IGNORE_INDEX) for f in features)
    assert (batch["labels"] != IGNORE_INDEX).sum() == n_targets


@pytest.mark.parametrize("model_name", ["gym-proxy", "gym-target-s"])
def test_packed_loss_and_gradients_equal_the_padded_path(tokenizer, features, model_name):
    model = tiny_model(model_name, tokenizer, seed=3).train()
    padded_loss, padded_grads = loss_and_grads(model, PadCollator(tokenizer.pad_token_id)(features))
    packed_loss, packed_grads = loss_and_grads(model, PackCollator(tokenizer.pad_token_id, CAPACITY)(features))
    assert torch.allclose(packed_loss, padded_loss, rtol=1e-5, atol=1e-6)
    for name, grad in padded_grads.items():
        assert torch.allclose(packed_grads[name], grad, rtol=1e-4, atol=1e-6), name
    # the equality is not vacuous: one example fewer changes both
    fewer_loss, fewer_grads = loss_and_grads(model, PackCollator(tokenizer.pad_token_id, CAPACITY)(features[1:]))
    assert not torch.allclose(fewer_loss, padded_loss, rtol=1e-4)


def test_attention_never_crosses_examples(tokenizer, features):
    model = tiny_model("gym-proxy", tokenizer, seed=3).eval()
    # longest first, so the perturbed example precedes the others in the row (first-fit decreasing)
    first, *rest = sorted(features[:5], key=lambda f: -len(f["input_ids"]))
    collator = PackCollator(tokenizer.pad_token_id, capacity=sum(len(f["input_ids"]) for f in features[:5]))
    changed = {"input_ids": [(t + 1) % len(tokenizer) for t in first["input_ids"]], "labels": first["labels"]}
    with torch.no_grad():
        base = collator([first, *rest])
        other = collator([changed, *rest])
        assert base["input_ids"].shape[0] == 1  # all five in one row: the first precedes the others
        logits = model(**{k: v for k, v in base.items() if k != "labels"}).logits
        logits_changed = model(**{k: v for k, v in other.items() if k != "labels"}).logits
    n = len(first["input_ids"])
    assert not torch.allclose(logits[0, :n], logits_changed[0, :n])  # the perturbed example moved
    torch.testing.assert_close(logits[0, n:], logits_changed[0, n:], rtol=0, atol=1e-5)  # the others did not
    # each packed example's logits equal those of the example run alone
    at = n
    with torch.no_grad():
        for f in rest:
            alone = model(input_ids=torch.tensor([f["input_ids"]])).logits[0]
            torch.testing.assert_close(logits[0, at:at + len(f["input_ids"])], alone, rtol=1e-4, atol=1e-5)
            at += len(f["input_ids"])


def test_the_probe_accepts_the_gym_models_and_rejects_a_model_that_leaks(gym, tokenizer):
    dataset = EncodedPool(Pool(gym[0][:4]), tokenizer, 128, "alpaca")
    for name in ("gym-proxy", "gym-target-s", "gym-target-l"):
        assert packing_problem(tiny_model(name, tokenizer), dataset, tokenizer.pad_token_id) is None, name

    class DropsPositions(torch.nn.Module):
        """A model that ignores position ids: it builds a plain causal mask over the whole packed row."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, position_ids=None, use_cache=None, **kwargs):
            return self.inner(input_ids=input_ids, **kwargs)

    leaky = DropsPositions(tiny_model("gym-proxy", tokenizer))
    problem = packing_problem(leaky, dataset, tokenizer.pad_token_id)
    assert problem is not None and "attention crosses examples" in problem
    assert leaky.training  # the probe restores the model's mode

    class Refuses(DropsPositions):
        def forward(self, input_ids, attention_mask=None, **kwargs):
            if "position_ids" in kwargs:
                raise TypeError("unexpected keyword argument 'position_ids'")
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    assert "rejects packed inputs" in packing_problem(Refuses(tiny_model("gym-proxy", tokenizer)), dataset,
                                                      tokenizer.pad_token_id)


def test_a_model_without_packing_falls_back_to_padding_or_errors_when_required(gym, monkeypatch, tmp_path, caplog):
    import s2lbench.training.trainer as training

    monkeypatch.setattr(training, "packing_problem", lambda *a: "its forward rejects packed inputs (test)")
    with caplog.at_level(logging.WARNING, logger="s2lbench.training.trainer"):
        train(gym[0].subset(range(20)), tiny_config(gym, total_steps=2), tmp_path / "auto")
    assert "padding-free training is off for gym-proxy" in caplog.text
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["padding_free"] is False
    with pytest.raises(ConfigError, match="padding_free: model 'gym-proxy' cannot train on packed batches"):
        train(gym[0].subset(range(20)), tiny_config(gym, total_steps=2, padding_free=True), tmp_path / "required")
    with pytest.raises(ConfigError, match="padding_free"):
        tiny_config(gym, padding_free="yes")


def test_packed_training_is_seeded_and_follows_the_padded_run(gym, tmp_path):
    pool = gym[0].subset(range(60))
    packed = train(pool, tiny_config(gym, total_steps=5, batch_size=8), tmp_path / "packed")
    again = train(pool, tiny_config(gym, total_steps=5, batch_size=8), tmp_path / "again")
    padded = train(pool, tiny_config(gym, total_steps=5, batch_size=8, padding_free=False), tmp_path / "padded")
    assert json.loads((tmp_path / "packed" / "run.json").read_text())["padding_free"] is True
    assert json.loads((tmp_path / "padded" / "run.json").read_text())["padding_free"] is False
    losses = {name: [h["loss"] for h in r.log_history if "loss" in h]
              for name, r in (("packed", packed), ("again", again), ("padded", padded))}
    assert losses["packed"] == losses["again"] and len(losses["packed"]) == 5  # same seed, same run
    np.testing.assert_allclose(losses["packed"], losses["padded"], rtol=1e-4)  # same batches, same loss
    from safetensors.torch import load_file

    a, b = (load_file(str(r.model_dir / "model.safetensors")) for r in (packed, again))
    assert all(torch.equal(a[k], b[k]) for k in a)


class Killed(Exception):
    pass


def test_a_padded_run_folder_resumes_under_packing(gym, tmp_path):
    """padding_free is not part of a run's identity: folders made before the key existed, or with it off, resume."""
    pool = gym[0].subset(range(40))

    def kill_at_2(step, checkpoint_dir):
        if step == 2:
            raise Killed

    with pytest.raises(Killed):
        train(pool, tiny_config(gym, save_every=2, padding_free=False), tmp_path / "run", eval_hook=kill_at_2)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2]
    resumed = train(pool, tiny_config(gym, save_every=2), tmp_path / "run")
    assert [h["step"] for h in resumed.log_history if "loss" in h] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["padding_free"] is True
