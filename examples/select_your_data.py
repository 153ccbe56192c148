"""Use S2L on your own data, then train with your own trainer: the whole loop outside s2lbench's runner.

1. select 10 % of the GSM8K train file with S2L, from the loss trajectories of a tiny proxy trained on it;
2. export the subset as conversational ``messages`` JSONL, the format TRL's SFTTrainer takes;
3. fine-tune a small causal LM on it with TRL's SFTTrainer (loss on the assistant's turn only).

It runs on a CPU in a minute or two with the defaults (a 0.2M-parameter proxy, a 0.5M-parameter model, a few
dozen steps each): the point is the loop, not the model. On a GPU, name real models instead:

    python examples/select_your_data.py --proxy EleutherAI/pythia-70m --model EleutherAI/pythia-410m \\
        --proxy-steps 1000 --train-steps 1000

The same selection from the command line is one command:

    s2lbench subset --pool $S2LBENCH_DATA_DIR/train/gsm8k_train.jsonl --selector s2l --budget 0.1 \\
        --proxy gym-proxy --format messages --out runs/gsm8k-s2l-10
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import s2lbench

#: a chat template for a tokenizer that has none (the tiny proxy's); ``{% generation %}`` marks the tokens
#: TRL trains on with ``assistant_only_loss``
CHAT_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}"
                 "{{ 'Question: ' + message['content'] + '\\nAnswer: ' }}"
                 "{% else %}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{% endif %}"
                 "{% endfor %}")


def gsm8k_train_file() -> Path:
    data = Path(os.environ.get("S2LBENCH_DATA_DIR", "data"))
    path = data / "train" / "gsm8k_train.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: set S2LBENCH_DATA_DIR to the folder holding train/gsm8k_train.jsonl")
    return path


def select(args: argparse.Namespace) -> tuple[Path, str]:
    """Steps 1-2: the S2L subset as TRL ``messages`` JSONL; returns it and the proxy's tokenizer."""
    result = s2lbench.subset(
        gsm8k_train_file(), "s2l", args.budget, out=args.out / "subset", proxy=args.proxy, format="messages",
        seed=args.seed, options={"n_clusters": args.clusters},
        proxy_train={"total_steps": args.proxy_steps, "n_checkpoints": 4, "batch_size": 32, "max_length": 160})
    print(f"S2L picked {len(result.ids)} examples -> {result.path}")
    return result.path, result.diagnostics["provenance"]["proxy"]["tokenizer"]


def fine_tune(subset_file: Path, tokenizer_source: str, args: argparse.Namespace) -> float:
    """Step 3: TRL's SFTTrainer on the exported subset, as on any conversational dataset; the final loss."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(args.model if args.model else tokenizer_source)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if args.model:
        model = AutoModelForCausalLM.from_pretrained(args.model)
    else:  # a small GPT-NeoX from its config, trained from scratch
        config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
                               intermediate_size=384, max_position_embeddings=512, rotary_pct=0.25,
                               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                               pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
        model = AutoModelForCausalLM.from_config(config)
    dataset = load_dataset("json", data_files=str(subset_file), split="train")
    config = SFTConfig(output_dir=str(args.out / "sft"), max_steps=args.train_steps, per_device_train_batch_size=16,
                       learning_rate=3e-3, lr_scheduler_type="cosine", warmup_steps=2, max_length=256,
                       assistant_only_loss=True, logging_steps=max(1, args.train_steps // 5), save_strategy="no",
                       report_to=[], seed=args.seed, use_cpu=args.cpu, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    trainer.save_model(str(args.out / "sft" / "final"))
    print(f"fine-tuned on {len(dataset)} S2L-selected examples: {result.global_step} steps, "
          f"training loss {result.training_loss:.3f} -> {args.out / 'sft' / 'final'}")
    return float(result.training_loss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/select-your-data"))
    parser.add_argument("--budget", default="0.1", help="a fraction of the pool (0.1) or a count (747)")
    parser.add_argument("--proxy", default="gym-proxy", help="the proxy: a tiny config (CPU) or a hub id")
    parser.add_argument("--proxy-steps", type=int, default=40)
    parser.add_argument("--clusters", type=int, default=20, help="S2L's K (the paper: 100 on MathInstruct)")
    parser.add_argument("--model", default=None, help="the model to fine-tune (a hub id); default a small "
                                                      "GPT-NeoX from config with the proxy's tokenizer")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is")
    args = parser.parse_args(argv)
    subset_file, tokenizer = select(args)
    fine_tune(subset_file, tokenizer, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
