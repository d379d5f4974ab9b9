"""Golden outputs: mining the tiny fixture with the hashing encoder gives exactly these candidates.

Written with MINE_VERSION mine-v3 (per-document sampling draws); mine-v4 (the document with a query's
id is a duplicate of the query) left them as they were: the fixture's query and document ids differ;
so did mine-v5 (qrels rows scored 0 are confirmed negatives): the fixture's qrels score 1.
A change here must be deliberate:
bump MINE_VERSION (so cached runs are re-mined, not reused) and regenerate the files, saying why in
the commit. Compared as rows, not bytes (Parquet files embed the writer's version).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hardneg.config import EmbedConfig, IndexConfig, MineConfig
from hardneg.mine import MINE_VERSION
from hardneg.pipeline import run_mine

GOLDEN = Path(__file__).parent / "data" / "golden"
CONFIGS = {
    "random": MineConfig(min_rank=2, max_rank=30, num_negatives=4, sampling="random", relative_margin=None),
    "simans": MineConfig(min_rank=0, max_rank=30, num_negatives=4, sampling="simans", relative_margin=None),
    "nv": MineConfig(min_rank=0, max_rank=30, num_negatives=4, sampling="top", relative_margin=0.05, fallback_min_rank=None),
    # A margin that empties one query and leaves another short: both filled from rank 5 on.
    "nv-fallback": MineConfig(min_rank=0, max_rank=30, num_negatives=8, sampling="top", relative_margin=0.9, fallback_min_rank=5),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_mining_the_fixture_gives_the_golden_candidates(tmp_path, tiny_beir, name):
    assert MINE_VERSION.startswith("mine-v5")
    run_mine(tiny_beir, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), CONFIGS[name])
    rows = [{k: r[k] for k in ("query_id", "doc_id", "rank", "filter", "selected")}
            for r in pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist()]
    golden = [json.loads(line) for line in (GOLDEN / f"mine-{name}.jsonl").read_text().splitlines()]
    assert rows == golden
