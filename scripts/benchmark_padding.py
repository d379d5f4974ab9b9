"""Padding of encoder batches under three orders: corpus order, length-sorted within each
2,048-text shard (what `hardneg embed` does), and length-sorted over the whole corpus.

Usage: CAP=512 python scripts/benchmark_padding.py ../shared/data scifact nfcorpus piaf_fr xquad_zh

Counts tokens with the bundled MiniLM's tokenizer, truncated at CAP (the model's max length);
compute grows with padded tokens, so padded/real is the share of work spent on padding. No encoding.
"""

import json
import os
import sys

import numpy as np
from transformers import AutoTokenizer

from hardneg.config import EmbedConfig
from hardneg.models import resolve_model

CAP = int(os.environ.get("CAP", "256"))


def padded(lens: np.ndarray, order: np.ndarray, batch: int = 64) -> int:
    """Tokens computed when the texts are encoded in this order, batch by batch (padded to the longest)."""
    return sum(int(lens[order[i : i + batch]].max()) * len(order[i : i + batch]) for i in range(0, len(order), batch))


def main() -> None:
    tok = AutoTokenizer.from_pretrained(resolve_model(EmbedConfig(model="minilm")).path)
    root = sys.argv[1]
    for name in sys.argv[2:]:
        texts = []
        for line in open(f"{root}/{name}/corpus.jsonl", encoding="utf-8"):
            d = json.loads(line)
            title = (d.get("title") or "").strip()
            texts.append(f"{title} {d['text'].strip()}".strip())
        lens = np.array([min(CAP, len(x)) for x in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]])
        real = int(lens.sum())
        idx = np.arange(len(lens))
        shard = np.concatenate([s[np.argsort(-lens[s], kind="stable")] for s in np.array_split(idx, range(2048, len(idx), 2048))])
        whole = np.argsort(-lens, kind="stable")
        print(f"{name}: {len(lens)} docs, mean {lens.mean():.0f} tokens (cap {CAP}); padded tokens / real: corpus order "
              f"{padded(lens, idx) / real:.3f}, per-2048-shard sorted {padded(lens, shard) / real:.3f}, "
              f"whole-corpus sorted {padded(lens, whole) / real:.3f}")


if __name__ == "__main__":
    main()
