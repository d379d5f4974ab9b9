"""Cut the bundled demo sample out of a BEIR folder (used once to make examples/scifact-sample).

Usage: python scripts/make_sample.py ../shared/data/scifact examples/scifact-sample --queries 60 --test-queries 30 --docs 400

Takes the first N train queries and the first M test queries (in qrels order), all their positive
documents, then fills the corpus up to --docs with documents in corpus order. The test split lets
a model trained on the sample's train split be evaluated on queries it never saw.
Deterministic: the same source gives the same files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--test-queries", type=int, default=30)
    parser.add_argument("--docs", type=int, default=400)
    args = parser.parse_args()

    def qrels(split: str) -> list[tuple[str, str, str]]:
        lines = (args.source / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        return [tuple(line.split("\t")) for line in lines if line.strip()]  # type: ignore[misc]

    train = qrels("train")
    qids = list(dict.fromkeys(q for q, _, _ in train))[: args.queries]
    keep_rows = [r for r in train if r[0] in qids]
    test = qrels("test")
    test_qids = [q for q in dict.fromkeys(q for q, _, _ in test) if q not in qids][: args.test_queries]
    test_rows = [r for r in test if r[0] in test_qids]
    positives = {d for _, d, _ in keep_rows + test_rows}
    corpus_lines = (args.source / "corpus.jsonl").read_text().splitlines()
    chosen = [line for line in corpus_lines if json.loads(line)["_id"] in positives]
    for line in corpus_lines:
        if len(chosen) >= args.docs:
            break
        if json.loads(line)["_id"] not in positives:
            chosen.append(line)
    ids = {json.loads(line)["_id"] for line in chosen}
    order = {json.loads(line)["_id"]: i for i, line in enumerate(corpus_lines)}
    chosen.sort(key=lambda line: order[json.loads(line)["_id"]])
    (args.dest / "qrels").mkdir(parents=True, exist_ok=True)
    (args.dest / "corpus.jsonl").write_text("\n".join(chosen) + "\n")
    wanted = set(qids) | set(test_qids)
    queries = [line for line in (args.source / "queries.jsonl").read_text().splitlines() if json.loads(line)["_id"] in wanted]
    (args.dest / "queries.jsonl").write_text("\n".join(queries) + "\n")
    header = "query-id\tcorpus-id\tscore\r\n"
    (args.dest / "qrels" / "train.tsv").write_text(header + "".join("\t".join(r) + "\r\n" for r in keep_rows), newline="")
    (args.dest / "qrels" / "test.tsv").write_text(header + "".join("\t".join(r) + "\r\n" for r in test_rows), newline="")
    print(f"{len(chosen)} documents, {len(queries)} queries, {len(keep_rows)} train / {len(test_rows)} test qrels -> {args.dest} ({len(ids)} ids)")


if __name__ == "__main__":
    main()
