"""The signal pass: values against a direct per-example computation, resume, BYO checkpoints and matrices, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from s2lbench.errors import ConfigError, DataError
from s2lbench.pool.encoding import IGNORE_INDEX, encode_example
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.signals import signal_pass as signals_mod
from s2lbench.signals.checkpoints import find_checkpoints
from s2lbench.signals.importing import import_trajectories
from s2lbench.signals.scoring import length_grouped_batches
from s2lbench.signals.signal_pass import compute_signals
from s2lbench.signals.signalset import SignalSet, nan_to_zero

CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!?#'\"()+-*/=<>$%\n"


def char_tokenizer():
    """A character-level PreTrainedTokenizerFast built in code (no hub)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for ch in CHARS:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def tiny_model(vocab_size: int, seed: int):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=1024, rotary_pct=0.25,
                           tie_word_embeddings=False)
    return GPTNeoXForCausalLM(config).eval()


def make_run(root: Path, steps=(10, 20, 30), *, run_json: bool = True, tokenizer_in_checkpoints: bool = True,
             tokenizer_at_top: bool = False) -> Path:
    """A proxy run: checkpoint-<step>/ HF model folders with different weights."""
    tok = char_tokenizer()
    root.mkdir(parents=True, exist_ok=True)
    for i, step in enumerate(steps):
        model = tiny_model(len(tok), seed=100 + i)
        model.save_pretrained(root / f"checkpoint-{step}")
        if tokenizer_in_checkpoints:
            tok.save_pretrained(root / f"checkpoint-{step}")
    if tokenizer_at_top:
        tok.save_pretrained(root)
    if run_json:
        (root / "run.json").write_text(json.dumps({"checkpoint_steps": list(steps), "pool_fingerprint": None,
                                                   "config": {"model": "tiny"}}))
    return root


def make_pool(n: int = 12) -> Pool:
    rng = np.random.default_rng(0)
    examples = []
    for i in range(n):
        words = " ".join("".join(rng.choice(list("abcdefgh"), size=rng.integers(2, 6))) for _ in range(rng.integers(1, 12)))
        answer = " ".join(str(x) for x in rng.integers(0, 100, size=rng.integers(1, 15)))
        examples.append(SFTExample(id=f"ex{i}", instruction=f"Add up {words}?", output=f"{answer} #### {i}",
                                   input="ctx" if i % 3 == 0 else ""))
    return Pool(examples, name="toy")


def direct_signals(model, tokenizer, example, max_length=512):
    """The reference: one example, full logits, fp32, written from the definitions."""
    enc = encode_example(tokenizer, example, max_length)
    ids = torch.tensor([enc.input_ids])
    labels = torch.tensor([enc.labels])
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels, output_hidden_states=True)
    logits = out.logits[0, :-1].double()
    gold = labels[0, 1:]
    keep = gold != IGNORE_INDEX
    probs = torch.softmax(logits[keep], dim=-1)
    g = gold[keep]
    p_gold = probs[torch.arange(len(g)), g]
    onehot = torch.nn.functional.one_hot(g, probs.shape[-1]).double()
    el2n = torch.linalg.vector_norm(probs - onehot, dim=-1).mean()
    return (float(out.loss), float(p_gold.mean()), float(el2n),
            out.hidden_states[-1][0].mean(0).numpy())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("proxy") / "run")


def test_signals_match_direct_per_example_computation(run_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pool = make_pool(12)
    # small batch_tokens forces several length-grouped batches with padding inside them
    sig = compute_signals(pool, run_dir, tmp_path / "sig", batch_tokens=300, batch_size=4, progress=False)
    traj = sig.get("loss")
    assert traj.shape == (12, 3) and traj.dtype == np.float32
    tok = AutoTokenizer.from_pretrained(run_dir / "checkpoint-30")
    for col, step in enumerate((10, 20, 30)):
        model = AutoModelForCausalLM.from_pretrained(run_dir / f"checkpoint-{step}").eval()
        for row, ex in enumerate(pool):
            loss, conf, el2n, emb = direct_signals(model, tok, ex)
            assert traj[row, col] == pytest.approx(loss, abs=1e-4)
            assert sig.get("confidence")[row, col] == pytest.approx(conf, abs=1e-5)
            assert sig.get("el2n")[row, col] == pytest.approx(el2n, abs=1e-5)
            if step == 30:
                np.testing.assert_allclose(sig.get("proxy_embedding")[row], emb, atol=1e-4)
    # different checkpoints really give different trajectories (the columns are not copies)
    assert not np.allclose(traj[:, 0], traj[:, 2])


def test_full_logits_path_agrees_with_head_on_labels(run_dir, tmp_path):
    pool = make_pool(8)
    fast = compute_signals(pool, run_dir, tmp_path / "fast", embed=False, progress=False)
    full = compute_signals(pool, run_dir, tmp_path / "full", embed=False, full_logits=True, progress=False)
    np.testing.assert_allclose(fast.get("loss"), full.get("loss"), atol=1e-4)
    np.testing.assert_allclose(fast.get("el2n"), full.get("el2n"), atol=1e-5)
    assert fast.manifest["cost"]["per_checkpoint"][0]["mode"] == "head_on_labels"
    assert full.manifest["cost"]["per_checkpoint"][0]["mode"] == "full_logits"
    assert not fast.has("proxy_embedding")


def test_manifest_records_pool_model_steps_cost_and_versions(run_dir, tmp_path):
    pool = make_pool(6)
    sig = compute_signals(pool, run_dir, tmp_path / "sig", max_length=64, progress=False)
    m = json.loads((tmp_path / "sig" / "manifest.json").read_text())
    assert m["pool_fingerprint"] == pool.fingerprint() and m["pool"]["n_examples"] == 6
    assert m["checkpoint_steps"] == [10, 20, 30] == sig.steps
    assert [c["step"] for c in m["model"]["checkpoints"]] == [10, 20, 30]
    assert len({c["fingerprint"] for c in m["model"]["checkpoints"]}) == 3
    assert m["model"]["run_config"] == {"model": "tiny"}
    assert m["encoding"]["max_length"] == 64 and m["encoding"]["template"] == "alpaca"
    assert set(m["versions"]) >= {"s2lbench", "torch", "transformers", "numpy"}
    per = m["cost"]["per_checkpoint"]
    assert all(c["flops_estimate"] == 2.0 * c["n_parameters"] * c["tokens"] for c in per)
    assert m["cost"]["flops_estimate"] == pytest.approx(sum(c["flops_estimate"] for c in per))
    assert m["cost"]["wall_seconds"] > 0
    assert set(m["signals"]) == {"loss", "confidence", "el2n", "proxy_embedding", "response_tokens"}
    assert sig.get("proxy_embedding").shape == (6, 32)


def test_resume_after_interruption_recomputes_no_finished_checkpoint(run_dir, tmp_path, monkeypatch):
    pool = make_pool(8)
    out = tmp_path / "sig"
    scored = []
    real = signals_mod.score_checkpoint

    def crash_on_second(model, *args, **kwargs):
        if len(scored) == 1:
            raise KeyboardInterrupt("killed")
        scored.append(kwargs["desc"])
        return real(model, *args, **kwargs)

    monkeypatch.setattr(signals_mod, "score_checkpoint", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        compute_signals(pool, run_dir, out, progress=False)
    assert not (out / "trajectories.npy").exists() and not (out / "manifest.json").exists()
    assert len(list((out / "parts").glob("step-000000010-*.npz"))) == 1
    assert not list((out / "parts").glob(".*tmp*"))  # no half-written file left behind

    resumed = []

    def counting(model, *args, **kwargs):
        resumed.append(kwargs["desc"])
        return real(model, *args, **kwargs)

    monkeypatch.setattr(signals_mod, "score_checkpoint", counting)
    sig = compute_signals(pool, run_dir, out, progress=False)
    assert [d.split()[1] for d in resumed] == ["20", "30"]
    cached = [c["cached"] for c in sig.manifest["cost"]["per_checkpoint"]]
    assert cached == [True, False, False]
    fresh = compute_signals(pool, run_dir, tmp_path / "fresh", progress=False)
    np.testing.assert_allclose(sig.get("loss"), fresh.get("loss"), atol=1e-6)

    resumed.clear()
    compute_signals(pool, run_dir, out, progress=False)  # everything cached: nothing recomputed
    assert resumed == []
    compute_signals(make_pool(9), run_dir, out, progress=False)  # a different pool is a different key
    assert len(resumed) == 3


def test_hf_trainer_folder_without_run_json_and_tokenizer_override(tmp_path):
    run = make_run(tmp_path / "official", steps=(500, 100, 1000), run_json=False, tokenizer_in_checkpoints=False)
    assert [c.step for c in find_checkpoints(run)] == [100, 500, 1000]  # numeric, not lexicographic
    pool = make_pool(5)
    with pytest.raises(ConfigError, match="--tokenizer"):
        compute_signals(pool, run, tmp_path / "sig", progress=False)
    tok_dir = tmp_path / "tok"
    char_tokenizer().save_pretrained(tok_dir)
    sig = compute_signals(pool, run, tmp_path / "sig", tokenizer=tok_dir, progress=False)
    assert sig.steps == [100, 500, 1000] and sig.get("loss").shape == (5, 3)
    assert np.isfinite(sig.get("loss")).all()

    top = make_run(tmp_path / "top", steps=(1, 2), run_json=False, tokenizer_in_checkpoints=False,
                   tokenizer_at_top=True)
    assert compute_signals(pool, top, tmp_path / "sig2", embed=False, progress=False).get("loss").shape == (5, 2)


def test_checkpoint_list_and_bad_folders(run_dir, tmp_path):
    pool = make_pool(4)
    sig = compute_signals(pool, [(30, run_dir / "checkpoint-30"), (10, run_dir / "checkpoint-10")],
                          tmp_path / "sig", progress=False)
    assert sig.steps == [10, 30]
    with pytest.raises(DataError, match="no checkpoints found"):
        find_checkpoints(tmp_path / "sig")
    with pytest.raises(DataError, match="not found"):
        find_checkpoints(tmp_path / "missing")


def test_length_grouped_batches_cover_every_example_once_and_respect_budget():
    rng = np.random.default_rng(1)
    lengths = list(rng.integers(5, 400, size=300))
    batches = length_grouped_batches(lengths, batch_tokens=2000, batch_size=16)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(300))
    for b in batches:
        assert len(b) <= 16 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 2000)
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima == sorted(maxima, reverse=True)
    with pytest.raises(ConfigError):
        length_grouped_batches(lengths, 0, 4)


def test_import_matrix_with_nan_npy_and_pt(tmp_path):
    pool = make_pool(5)
    matrix = np.arange(15, dtype=np.float64).reshape(5, 3)
    matrix[1, 2] = np.nan
    np.save(tmp_path / "m.npy", matrix)
    sig = import_trajectories(tmp_path / "m.npy", tmp_path / "a", pool=pool, steps=[100, 200, 300])
    loaded = sig.for_pool(len(pool)).get("loss")
    assert loaded.dtype == np.float32 and np.isnan(loaded[1, 2]) and loaded[4, 0] == 12
    assert sig.steps == [100, 200, 300] and sig.manifest["nan_entries"] == 1
    assert sig.manifest["pool_fingerprint"] == pool.fingerprint()
    assert nan_to_zero(loaded)[1, 2] == 0

    torch.save({"losses": torch.tensor(matrix)}, tmp_path / "m.pt")
    sig = import_trajectories(tmp_path / "m.pt", tmp_path / "b", pool=pool)
    assert sig.steps == [0, 1, 2] and np.isnan(sig.get("loss")[1, 2])
    with pytest.raises(DataError, match="4 rows but the pool has 5"):
        import_trajectories(matrix[:4], tmp_path / "c", pool=pool)
    with pytest.raises(DataError, match="2 checkpoint steps"):
        import_trajectories(matrix, tmp_path / "c", steps=[1, 2])


def test_cli_signals_and_import(run_dir, tmp_path, capsys):
    from s2lbench.cli import main
    from s2lbench.pool.loaders import write_pool

    pool = make_pool(6)
    pool_file = write_pool(tmp_path / "pool.jsonl", pool)
    out = tmp_path / "sig"
    assert main(["signals", "--pool", str(pool_file), "--proxy-run", str(run_dir), "--out", str(out),
                 "--no-progress", "--max-length", "128"]) == 0
    sig = SignalSet.from_dir(out)
    assert sig.get("loss").shape == (6, 3) and sig.manifest["encoding"]["max_length"] == 128
    assert "trajectories.npy" in capsys.readouterr().out

    np.save(tmp_path / "m.npy", np.ones((6, 2)))
    assert main(["signals", "import", "--pool", str(pool_file), "--matrix", str(tmp_path / "m.npy"),
                 "--out", str(tmp_path / "imp")]) == 0
    assert SignalSet.from_dir(tmp_path / "imp").get("loss").shape == (6, 2)
    assert main(["signals", "import", "--pool", str(pool_file), "--matrix", str(tmp_path / "nope.npy"),
                 "--out", str(tmp_path / "imp2")]) == 2
    assert "nope.npy" in capsys.readouterr().err


def test_max_length_and_template_default_to_the_runs_training_config(tmp_path):
    run = make_run(tmp_path / "run", steps=(5,))
    (run / "run.json").write_text(json.dumps({"checkpoint_steps": [5], "pool_fingerprint": "elsewhere",
                                              "config": {"max_length": 40, "template": "alpaca"}}))
    pool = make_pool(6)
    sig = compute_signals(pool, run, tmp_path / "sig", embed=False, progress=False)
    assert sig.manifest["encoding"]["max_length"] == 40
    assert sig.manifest["encoding"]["truncated_examples"] > 0
    explicit = compute_signals(pool, run, tmp_path / "sig2", max_length=512, embed=False, progress=False)
    assert explicit.manifest["encoding"]["max_length"] == 512
    assert not np.allclose(sig.get("loss"), explicit.get("loss"))


def test_embed_all_checkpoints_and_no_stale_embedding_left(run_dir, tmp_path):
    pool = make_pool(5)
    out = tmp_path / "sig"
    sig = compute_signals(pool, run_dir, out, embed="all", progress=False)
    by_checkpoint = np.load(out / signals_mod.EMBEDDING_BY_CHECKPOINT_FILE)
    assert by_checkpoint.shape == (5, 3, 32)
    np.testing.assert_allclose(by_checkpoint[:, -1], sig.get("proxy_embedding"))
    assert not np.allclose(by_checkpoint[:, 0], by_checkpoint[:, -1])
    sig = compute_signals(pool, run_dir, out, embed=False, progress=False)  # losses all cached
    assert not sig.has("proxy_embedding") and not (out / signals_mod.EMBEDDING_BY_CHECKPOINT_FILE).exists()
    assert all(c["cached"] for c in sig.manifest["cost"]["per_checkpoint"])
    with pytest.raises(ConfigError, match="embed"):
        compute_signals(pool, run_dir, out, embed="first", progress=False)
