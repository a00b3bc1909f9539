"""Build a tiny random-weight Llama and its tokenizer on local disk, for replay tests without a hub.

Replay sends token-id prompts and fixes output lengths with ``ignore_eos``, so what is measured is
the engine (scheduling, batching, prefix caching, prefill vs decode cost), not what the model says.
A model with random weights exercises all of that; it only has to be a real architecture vLLM loads.

Run it with the python of the vLLM environment (it needs torch, transformers and tokenizers, which
llmaudit itself does not depend on); as a script it imports nothing from llmaudit, so llmaudit
need not be installed there:

    .venv-vllm/bin/python llmaudit/replay/tiny_model.py OUT_DIR [--hidden 256 --layers 4]

The defaults (vocabulary 2,048, hidden size 256, 4 layers, about 3.7 M parameters, 7 MB, built in
about 8 s) make prompt length show clearly in busy time on a CPU: with a smaller model the fixed
per-request overhead hides it.

Everything is deterministic: the tokenizer is trained on a corpus generated from a fixed seed (not
on files that differ per machine) and the weights come from a seeded generator, so the same options
give the same model on every machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

# Nothing may be fetched from a hub: fail fast instead of hanging on a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SPECIAL_TOKENS = ["<s>", "</s>"]  # ids 0 and 1: bos and eos
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"


def synthetic_corpus(lines: int = 4000, seed: int = 0) -> list[str]:
    """Text with a Zipf-like word distribution, so BPE learns real merges. Seeded: same text everywhere."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    syllables = [a + b for a in letters[:20] for b in "aeiou"] + list(letters)
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    weights = [1.0 / (i + 1) for i in range(len(words))]
    punctuation = [".", ",", ":", "(", ")", "=", "\n", "    ", "_", "0", "1", "42", "'", '"']
    out = []
    for _ in range(lines):
        picked = rng.choices(words, weights=weights, k=rng.randint(4, 20))
        line = " ".join(w + (rng.choice(punctuation) if rng.random() < 0.2 else "") for w in picked)
        out.append(line)
    return out


def build(out_dir: str | Path, *, vocab_size: int = 2048, hidden: int = 256, layers: int = 4, heads: int = 4,
          max_positions: int = 4096, seed: int = 0) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # Byte-level BPE: every byte sequence is encodable, so any text vLLM is asked to detokenize works.
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(synthetic_corpus(seed=seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))

    cfg = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_positions,
        bos_token_id=0, eos_token_id=1, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(str(out), safe_serialization=True)
    info = {"path": str(out), "vocab_size": len(fast), "parameters": sum(p.numel() for p in model.parameters()),
            "hidden": hidden, "layers": layers, "max_positions": max_positions}
    (out / "llmaudit_tiny_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-positions", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    info = build(a.out_dir, vocab_size=a.vocab, hidden=a.hidden, layers=a.layers, heads=a.heads,
                 max_positions=a.max_positions, seed=a.seed)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
