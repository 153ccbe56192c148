"""Greedy decoding that drops each row from the batch once it has finished (the transformers backend's loop).

``model.generate`` keeps every row of a batch in every decoding step until the last row stops, so one answer
that rambles to ``max_new_tokens`` makes the whole batch pay for it; on a CPU evaluating small models that
is most of the evaluation time. Here a row leaves the batch, and its part of the KV cache with it
(``DynamicCache.batch_select_indices``), on the step it emits an end-of-sequence token, completes a stop
string or reaches ``max_new_tokens``. The tokens are the ones ``generate`` picks: the same forward passes
(left padding, position ids from the attention mask, as ``generate`` builds them), argmax, no logits
processing. tests/test_generation_compacting.py compares both, token for token.

Not decoded here (``compacting_greedy`` returns None and the caller uses ``generate``): a model whose
generation config changes which token greedy decoding picks (``generate`` applies a checkpoint's
``repetition_penalty``, ``suppress_tokens``, ... even without sampling; ``greedy_choice_settings`` names
them), and one whose cache is not a plain ``DynamicCache`` of full-attention layers (sliding windows, linear
attention, encoder-decoder, a custom cache).
"""

from __future__ import annotations

import inspect
from typing import Any

#: generation-config fields through which ``generate`` changes the greedy choice, with their neutral values
_LOGITS_SETTINGS: dict[str, Any] = {
    "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "sequence_bias": None, "suppress_tokens": None,
    "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "forced_decoder_ids": None, "min_length": 0, "min_new_tokens": None, "exponential_decay_length_penalty": None,
    "guidance_scale": None, "watermarking_config": None,
}


def greedy_choice_settings(model: Any) -> list[str]:
    """The model's generation-config settings that make ``generate`` pick other tokens than a plain argmax."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return []
    return [f"{key}={getattr(config, key)!r}" for key, neutral in _LOGITS_SETTINGS.items()
            if getattr(config, key, neutral) not in (neutral, None, [], {})]


def _forward_names(model: Any) -> tuple[str, bool, bool]:
    """(the forward's cache argument name, whether it takes position_ids, whether it takes logits_to_keep)."""
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values", "position_ids" in params,
            "logits_to_keep" in params)


def _plain_dynamic_cache(cache: Any) -> bool:
    from transformers.cache_utils import DynamicCache, DynamicLayer

    layers = getattr(cache, "layers", None)  # older transformers keep key/value lists instead of layers
    return type(cache) is DynamicCache and layers is not None and all(type(layer) is DynamicLayer for layer in layers)


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends a row: the generation config's EOS (an int or a list) and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return ids


def compacting_greedy(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int,
                      stop: tuple[str, ...]) -> list[list[int]] | None:
    """Each prompt's greedy continuation as token ids (without the end token), or None if ``model`` needs
    ``generate``. The tokenizer must pad on the left."""
    import torch

    if getattr(model.config, "is_encoder_decoder", False) or greedy_choice_settings(model) or max_new_tokens < 1:
        return None
    cache_name, takes_positions, takes_logits_to_keep = _forward_names(model)
    device = next(model.parameters()).device
    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    mask = enc["attention_mask"]
    inputs: dict[str, Any] = {"input_ids": enc["input_ids"], "attention_mask": mask, "use_cache": True}
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    if takes_positions:
        inputs["position_ids"] = positions
    if takes_logits_to_keep:
        inputs["logits_to_keep"] = 1
    with torch.inference_mode():
        out = model(**inputs)
        cache = out.get("cache", out.get("past_key_values"))
        if not _plain_dynamic_cache(cache):
            return None
        ends = end_token_ids(model, tokenizer)
        stops = [s for s in stop if s]
        window = 2 * max((len(s) for s in stops), default=0) + 2  # tokens: each decodes to >= 1 character
        rows = torch.arange(len(prompts), device=device)
        last = positions[:, -1]
        generated: list[list[int]] = [[] for _ in prompts]
        logits = out.logits[:, -1, :]
        for _ in range(max_new_tokens):
            chosen = logits.argmax(dim=-1)
            finished = []
            for j, (row, token) in enumerate(zip(rows.tolist(), chosen.tolist(), strict=True)):
                if token in ends:
                    finished.append(j)
                    continue
                tokens = generated[row]
                tokens.append(token)
                if len(tokens) >= max_new_tokens or (stops and _completes_stop(tokenizer, tokens, stops, window)):
                    finished.append(j)
            if finished:
                keep = torch.ones(len(rows), dtype=torch.bool, device=device)
                keep[finished] = False
                if not keep.any():
                    break
                kept = keep.nonzero().squeeze(1)
                rows, chosen, mask, last = rows[kept], chosen[kept], mask[kept], last[kept]
                cache.batch_select_indices(kept)
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
            last = last + 1
            step: dict[str, Any] = {"input_ids": chosen[:, None], "attention_mask": mask, cache_name: cache,
                                    "use_cache": True}
            if takes_positions:
                step["position_ids"] = last[:, None]
            logits = model(**step).logits[:, -1, :]
    return generated


def _completes_stop(tokenizer: Any, tokens: list[int], stops: list[str], window: int) -> bool:
    """Whether the row's text now contains a stop string. The last few tokens are checked each step; a hit is
    confirmed on the whole row, since a tokenizer may decode a token differently at the start of a window."""
    tail = tokenizer.decode(tokens[-window:], skip_special_tokens=True)
    if not any(s in tail for s in stops):
        return False
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return any(s in text for s in stops)
