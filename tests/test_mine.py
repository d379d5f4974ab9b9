"""Mining semantics on a hand-built corpus whose ranking is known exactly."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hardneg.config import EmbedConfig, IndexConfig, MineConfig
from hardneg.embed import embed
from hardneg.errors import ConfigError
from hardneg.index import build_index
from hardneg.inputs import load_input
from hardneg.mine import mine
from hardneg.pipeline import run_mine
from hardneg.sampling import doc_keys
from tests.conftest import TINY_BEIR, TableEncoder

QUERY = "what is rank?"
N_DOCS = 30
POSITIVES = ["d03", "d15"]
# Same normalised text as another document (or the query), but different raw text and vector.
DUPLICATE_TEXTS = {12: "PASSAGE  number 03", 20: "Passage Number 19", 21: "What Is  Rank?"}


def _doc_text(i: int) -> str:
    return DUPLICATE_TEXTS.get(i, f"passage number {i:02d}")


@pytest.fixture
def ranked(tmp_path: Path) -> tuple[Path, TableEncoder]:
    """A BEIR folder where document d{i} is ranked exactly i-th for the query, plus its encoder."""
    root = tmp_path / "ranked"
    (root / "qrels").mkdir(parents=True)
    vectors: dict[str, np.ndarray] = {QUERY: np.array([1.0, 0.0, 0.0])}
    with open(root / "corpus.jsonl", "w") as fh:
        for i in range(N_DOCS):
            theta = 0.04 * (i + 1)
            vectors[_doc_text(i)] = np.array([math.cos(theta), math.sin(theta), 0.0])
            fh.write(json.dumps({"_id": f"d{i:02d}", "title": "", "text": _doc_text(i)}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": QUERY}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q\t{p}\t1\n" for p in POSITIVES))
    return root, TableEncoder(vectors)


def _mine(
    ranked: tuple[Path, TableEncoder], tmp_path: Path, backend: str = "exact", scorer: object = None, **mine_args: object
) -> tuple[list[dict], dict]:
    root, encoder = ranked
    dataset = load_input(root)
    emb = embed(dataset, tmp_path / "emb", EmbedConfig(), encoder=encoder).path
    idx = build_index(emb, tmp_path / f"idx-{backend}", IndexConfig(backend=backend)).path
    # Neighbouring documents here are 0.04 rad apart (cosine 0.999): the near-duplicate filter would
    # take them all, so it is off unless a test asks for it.
    mine_args.setdefault("dedup_threshold", None)
    # The mechanics here are tested one rule at a time: the window recipe unless a test says otherwise
    # (the defaults' margin and fallback have their own tests).
    for key, value in (("sampling", "random"), ("relative_margin", None), ("fallback_min_rank", None)):
        mine_args.setdefault(key, value)
    # allow_empty: some tests check that every candidate is filtered out.
    result = mine(idx, tmp_path / "run", MineConfig(**mine_args), force=True, scorer=scorer, allow_empty=True)  # type: ignore[arg-type]
    rows = pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist()
    return rows, result.stats.to_dict()


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_window_holds_exactly_the_ranks_in_it_positives_counted(ranked, tmp_path, backend):
    rows, _ = _mine(ranked, tmp_path, backend, min_rank=10, max_rank=25, num_negatives=50)
    assert [r["rank"] for r in rows] == list(range(10, 25))
    # Rank counts the positive d03 at rank 3: rank 10 is d10, not d11.
    assert [r["doc_id"] for r in rows] == [f"d{i:02d}" for i in range(10, 25)]
    filters = {r["doc_id"]: r["filter"] for r in rows}
    assert filters["d15"] == "positive"
    assert filters["d12"] == "duplicate"  # same normalised text as positive d03
    assert filters["d20"] == "duplicate"  # same text as the better-ranked candidate d19
    assert filters["d21"] == "duplicate"  # same text as the query
    assert filters["d19"] == ""


def test_every_eligible_candidate_selected_when_enough_are_asked(ranked, tmp_path):
    rows, stats = _mine(ranked, tmp_path, min_rank=10, max_rank=25, num_negatives=50)
    selected = [r["doc_id"] for r in rows if r["selected"]]
    assert selected == ["d10", "d11", "d13", "d14", "d16", "d17", "d18", "d19", "d22", "d23", "d24"]
    assert stats["removed"] == {"positive": 1, "duplicate": 3}
    assert stats["candidates"] == 15 and stats["eligible"] == 11 and stats["selected"] == 11
    assert stats["queries_short"] == 1


def test_top_sampling_takes_the_best_ranked_survivors(ranked, tmp_path):
    rows, _ = _mine(ranked, tmp_path, min_rank=10, max_rank=25, num_negatives=3, sampling="top")
    assert [r["doc_id"] for r in rows if r["selected"]] == ["d10", "d11", "d13"]


def test_random_sampling_stays_in_window_and_follows_the_seed(ranked, tmp_path):
    picks = []
    for seed in (1, 1, 2):
        rows, _ = _mine(ranked, tmp_path, min_rank=10, max_rank=25, num_negatives=4, seed=seed)
        chosen = [r for r in rows if r["selected"]]
        assert len(chosen) == 4
        assert all(10 <= r["rank"] < 25 and r["filter"] == "" for r in chosen)
        picks.append([r["doc_id"] for r in chosen])
    assert picks[0] == picks[1]
    keys = doc_keys(1, "q", ["a", "b"]), doc_keys(2, "q", ["a", "b"])
    assert (keys[0] != keys[1]).all() and (doc_keys(1, "q", ["b", "a"])[::-1] == keys[0]).all()  # per document, not position


def test_full_window_never_selects_a_positive_or_duplicate(ranked, tmp_path):
    rows, stats = _mine(ranked, tmp_path, min_rank=0, max_rank=N_DOCS, num_negatives=N_DOCS)
    selected = {r["doc_id"] for r in rows if r["selected"]}
    assert not selected & {"d03", "d15", "d12", "d20", "d21"}
    assert len(selected) == N_DOCS - 5
    assert stats["positives_in_top"] == 2


def test_window_past_the_corpus_is_truncated(ranked, tmp_path):
    rows, stats = _mine(ranked, tmp_path, min_rank=25, max_rank=110, num_negatives=10)
    assert [r["rank"] for r in rows] == list(range(25, N_DOCS))
    assert stats["negatives_per_query"]["max"] == 5
    assert any("fewer than 10 negatives" in h for h in stats["hints"])


def _selections(run: Path) -> set[tuple[str, str, int]]:
    table = pq.read_table(run / "candidates.parquet").to_pylist()
    return {(r["query_id"], r["doc_id"], r["rank"]) for r in table if r["selected"]}


def test_result_does_not_depend_on_query_order_or_batching(tiny_beir, tmp_path):
    cfg = EmbedConfig(model="hashing")
    a = run_mine(tiny_beir, tmp_path / "a", cfg, IndexConfig(), MineConfig(min_rank=2, max_rank=30, num_negatives=5))
    qrels = tiny_beir / "qrels" / "train.tsv"
    lines = qrels.read_text().splitlines()
    qrels.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    b = run_mine(
        tiny_beir, tmp_path / "b", cfg, IndexConfig(), MineConfig(min_rank=2, max_rank=30, num_negatives=5, query_batch=1)
    )
    assert a.manifest["input"]["fingerprint"] != b.manifest["input"]["fingerprint"]
    assert _selections(tmp_path / "a") == _selections(tmp_path / "b")


def test_queries_without_positives_or_text_are_reported_not_dropped(tmp_path):
    root = tmp_path / "odd"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"doc {i} words"}) + "\n" for i in range(20)))
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "ok", "text": "doc 1"}) + "\n"
        + json.dumps({"_id": "empty", "text": "  "}) + "\n"
        + json.dumps({"_id": "judged-irrelevant", "text": "doc 2"}) + "\n"
    )
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nok\td1\t1\nempty\td3\t1\njudged-irrelevant\td2\t0\n")
    result = run_mine(root, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=1, max_rank=10))
    assert result.stats.queries == 3
    assert result.stats.queries_mined == 1
    assert result.stats.queries_skipped == {"empty-text": 1, "no-positive": 1}
    assert result.stats.skipped_query_ids == {"empty-text": ["empty"], "no-positive": ["judged-irrelevant"]}
    statuses = dict(zip(*pq.read_table(tmp_path / "run" / "queries.parquet", columns=["query_id", "status"]).to_pydict().values()))
    assert statuses == {"ok": "mined", "empty": "empty-text", "judged-irrelevant": "no-positive"}


def test_hnsw_and_exact_agree_on_a_small_corpus(tmp_path):
    cfg = EmbedConfig(model="hashing:128")
    mcfg = MineConfig(min_rank=0, max_rank=20, num_negatives=20, relative_margin=None)
    exact = run_mine(TINY_BEIR, tmp_path / "exact", cfg, IndexConfig(backend="exact"), mcfg)
    assert exact.manifest["index"]["backend"] == "exact" and exact.manifest["index"]["recall"] is None
    hnsw = run_mine(TINY_BEIR, tmp_path / "hnsw", cfg, IndexConfig(backend="hnsw"), mcfg)
    # Hashing vectors tie often (many scores are exactly 0), which caps set-overlap measures: tolerances.
    assert hnsw.manifest["index"]["recall"]["recall"] >= 0.9
    a, b = _selections(tmp_path / "exact"), _selections(tmp_path / "hnsw")
    overlap = len({x[:2] for x in a} & {x[:2] for x in b}) / len(a)
    assert overlap >= 0.9


# --------------------------------------------------------------------------- filters (issue: false negatives)

BASE_ELIGIBLE = [10, 11, 13, 14, 16, 17, 18, 19, 22, 23, 24]  # window [10, 25) minus positive/duplicates
MIN_POSITIVE = math.cos(0.04 * 16)  # d15, the lower of the two positives


def _score(i: int) -> float:
    return math.cos(0.04 * (i + 1))


def _eligible(rows: list[dict]) -> list[int]:
    return [int(r["doc_id"][1:]) for r in rows if r["filter"] == ""]


@pytest.mark.parametrize(
    ("args", "name", "rule"),
    [
        ({"relative_margin": 0.05}, "relative-margin", lambda s: s > MIN_POSITIVE - abs(MIN_POSITIVE) * 0.05),
        ({"absolute_margin": 0.1}, "absolute-margin", lambda s: s > MIN_POSITIVE - 0.1),
        ({"max_score": 0.75}, "max-score", lambda s: s > 0.75),
        ({"min_score": 0.7}, "min-score", lambda s: s < 0.7),
    ],
)
def test_score_rules_remove_exactly_what_their_formula_says(ranked, tmp_path, args, name, rule):
    rows, stats = _mine(ranked, tmp_path, min_rank=10, max_rank=25, num_negatives=50, **args)
    expected_removed = [i for i in BASE_ELIGIBLE if rule(_score(i))]
    assert 0 < len(expected_removed) < len(BASE_ELIGIBLE)  # the case is not vacuous
    assert _eligible(rows) == [i for i in BASE_ELIGIBLE if i not in expected_removed]
    assert sorted(int(r["doc_id"][1:]) for r in rows if r["filter"] == name) == expected_removed
    assert stats["removed"][name] == len(expected_removed)


def test_relative_margin_is_sign_safe_for_negative_positive_scores():
    from hardneg.filters import score_filter

    cfg = MineConfig(relative_margin=0.1)
    # min_pos = -0.5: threshold = -0.5 - 0.05 = -0.55 (a sign-naive (1 - m) x pos would give -0.45).
    assert score_filter(-0.54, -0.5, cfg) == "relative-margin"
    assert score_filter(-0.56, -0.5, cfg) == ""


def test_the_query_kept_in_the_corpus_under_its_id_and_a_title_is_never_a_negative(tmp_path, tiny_beir):
    """ArguAna takes its queries from the corpus under the same id, with topic tags as the title, so
    title + text is not the query's text. That document (same id, same text without the title) is a
    `duplicate` of the query, never a negative. A document that only shares a query's id (MS MARCO
    numbers queries and passages alike) is a candidate like any other; the rest is as before."""
    docs = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text().splitlines()]
    query, other = [json.loads(line) for line in (tiny_beir / "queries.jsonl").read_text().splitlines()[:2]]
    # Shards of 8 documents: the query's copy is in the last one, and the shards before it are not read.
    config = MineConfig(min_rank=0, max_rank=50, num_negatives=40, sampling="top", relative_margin=None, dedup_threshold=None)
    run_mine(tiny_beir, tmp_path / "before", EmbedConfig(model="hashing", shard_size=8), IndexConfig(backend="exact"), config,
             workdir=tmp_path / "wd", allow_empty=True)
    # The query's argument joins the corpus under its id, behind tags, as ArguAna keeps it.
    docs.append({"_id": query["_id"], "title": "geography capitals europe", "text": query["text"]})
    docs.append({"_id": other["_id"], "title": "", "text": "A passage on another subject that shares the query's number."})
    docs.append({"_id": "copy", "title": "geography capitals europe", "text": query["text"]})  # the same text again, below
    (tiny_beir / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    run_mine(tiny_beir, tmp_path / "after", EmbedConfig(model="hashing", shard_size=8), IndexConfig(backend="exact"), config,
             workdir=tmp_path / "wd", allow_empty=True)
    rows = pq.read_table(tmp_path / "after" / "candidates.parquet").to_pylist()
    own = [r for r in rows if r["doc_id"] == query["_id"] and r["query_id"] == query["_id"]]
    assert len(own) == 1 and own[0]["filter"] == "duplicate" and not own[0]["selected"] and own[0]["rank"] == 0
    assert [r["filter"] for r in rows if r["doc_id"] == "copy" and r["query_id"] == query["_id"]] == ["duplicate"]
    # For the other queries it is a document like any other; so is the one that only shares an id.
    assert {r["filter"] for r in rows if r["doc_id"] == query["_id"] and r["query_id"] != query["_id"]} == {""}
    assert {r["filter"] for r in rows if r["doc_id"] == other["_id"]} == {""}
    before = {(r["query_id"], r["doc_id"]): r["filter"] for r in pq.read_table(tmp_path / "before" / "candidates.parquet").to_pylist()}
    after = {(r["query_id"], r["doc_id"]): r["filter"] for r in rows if r["doc_id"] not in (query["_id"], other["_id"], "copy")}
    assert after == before  # for every other document, the same filters


def test_near_duplicates_of_a_positive_are_removed_and_counted(ranked, tmp_path):
    rows, stats = _mine(ranked, tmp_path, min_rank=10, max_rank=25, num_negatives=50, dedup_threshold=0.99)
    # cos to d15 >= 0.99 means |i - 15| x 0.04 rad <= acos(0.99): i in 12..18.
    assert sorted(int(r["doc_id"][1:]) for r in rows if r["filter"] == "near-duplicate") == [13, 14, 16, 17, 18]
    assert _eligible(rows) == [10, 11, 19, 22, 23, 24]
    assert stats["removed"]["near-duplicate"] == 5


def test_simans_prefers_negatives_scored_like_the_positive():
    from hardneg.sampling import sample_negatives

    cfg = MineConfig(sampling="simans", simans_a=200.0, num_negatives=1)
    picks = [sample_negatives([0, 1, 2, 3], [0.1, 0.45, 0.79, 0.3], 0.8, cfg, np.random.default_rng(s))[0] for s in range(40)]
    assert picks.count(2) >= 38
    cfg = MineConfig(sampling="simans", simans_a=0.5, num_negatives=3)
    chosen = sample_negatives(list(range(10)), [0.1 * i for i in range(10)], 0.5, cfg, np.random.default_rng(1))
    assert len(chosen) == 3 and chosen == sorted(chosen)


class FakeCrossEncoder:
    """Scores 0.97 for documents listed as relevant, 0.6 for 'borderline', 0.05 for the rest."""

    name = "fake-ce"
    fingerprint = "fake-ce-v1"

    def __init__(self, relevant: set[str], borderline: set[str]) -> None:
        self.relevant, self.borderline = relevant, borderline
        self.pairs: list[tuple[str, str]] = []

    def score(self, pairs):
        self.pairs += list(pairs)
        return np.array([0.97 if d in self.relevant else 0.6 if d in self.borderline else 0.05 for _, d in pairs], dtype=np.float32)


def test_cross_encoder_denoises_without_any_margin(ranked, tmp_path):
    ce = FakeCrossEncoder(relevant={_doc_text(17)}, borderline={_doc_text(22)})
    rows, stats = _mine(
        ranked, tmp_path, scorer=ce, min_rank=10, max_rank=25, num_negatives=50,
        ce_max_score=0.5, ce_pseudo_positive_score=0.9, cross_encoder="fake",
    )
    filters = {int(r["doc_id"][1:]): r["filter"] for r in rows}
    assert filters[17] == "pseudo-positive" and filters[22] == "cross-encoder"
    assert _eligible(rows) == [i for i in BASE_ELIGIBLE if i not in (17, 22)]
    teacher = {int(r["doc_id"][1:]): r["teacher_score"] for r in rows}
    assert teacher[10] == pytest.approx(0.05) and teacher[15] is None  # positives in the window are not rescored as candidates
    # Only survivors of the earlier filters and the 2 positives reach the cross-encoder.
    assert len(ce.pairs) == len(BASE_ELIGIBLE) + 2
    assert stats["removed"]["pseudo-positive"] == 1 and stats["removed"]["cross-encoder"] == 1
    run = pq.read_table(tmp_path / "run" / "queries.parquet").to_pylist()[0]
    assert run["positive_teacher_scores"] == [pytest.approx(0.05), pytest.approx(0.05)]


# --------------------------------------------------------------------------- lexical and hybrid retrievers


def test_rrf_fusion_sums_reciprocal_ranks_and_breaks_ties_by_label():
    from hardneg.search import fuse_rrf

    first = np.array([[5, 1, 2, 3]])
    second = np.array([[1, 9, 5, 7]])
    fused = fuse_rrf(first, second, k=60, depth=4)
    # 1: 1/62 + 1/61 = 0.03252; 5: 1/61 + 1/63 = 0.03227; 9: 1/62; 2: 1/63 (and 7: 1/64, cut).
    assert fused.tolist() == [[1, 5, 9, 2]]


def test_bm25_ranks_follow_term_overlap_and_scores_stay_cosines(tmp_path):
    root = tmp_path / "lex"
    (root / "qrels").mkdir(parents=True)
    docs = {
        "pos": "zebra migration across the serengeti plains",
        "both": "zebra herds and serengeti lions",
        "one": "zebra stripes confuse flies",
        "other": "serengeti national park tourism",
        "none1": "stock markets fell sharply today",
        "none2": "a recipe for lemon cake",
    }
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items()))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "zebra serengeti"}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\tpos\t1\n")
    result = run_mine(
        root, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(),
        MineConfig(min_rank=0, max_rank=6, num_negatives=6, retriever="bm25", dedup_threshold=None, relative_margin=None),
    )
    rows = pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist()
    order = [r["doc_id"] for r in rows]
    assert set(order[:2]) == {"pos", "both"}  # both query terms
    assert set(order[4:]) == {"none1", "none2"}  # no shared term: last, in label order
    assert order[4:] == ["none1", "none2"]
    assert result.stats.selected == 5
    # Scores are embedding cosines, not BM25 values (which would exceed 1 here).
    assert all(-1.0 <= r["score"] <= 1.0 for r in rows)


def test_bm25_terms_in_scripts_without_spaces_are_character_bigrams():
    """bm25s' own tokenizer took a Chinese sentence as one term, so BM25 ranked Chinese documents in
    label order (measured on xquad_zh test: Recall@1 0.09 before, 0.95 after). Terms are bigrams
    in Chinese, Japanese, Korean and Thai; words elsewhere keep their combining marks."""
    from hardneg.search import LexicalSearcher, lexical_tokens

    assert lexical_tokens("法国的首都") == ["法国", "国的", "的首", "首都"]
    assert lexical_tokens("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert lexical_tokens("Zebra ＺＥＢＲＡ, a STRASSE 5") == ["zebra", "zebra", "strasse"]
    assert lexical_tokens("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # vowel signs are part of the word
    assert lexical_tokens("北 x") == ["北"]
    docs = ["巴黎是法国的首都。", "柏林是德国的首都，位于施普雷河畔。", "东京是日本的首都。", "กรุงเทพมหานครเป็นเมืองหลวง"]
    searcher = LexicalSearcher(docs)
    assert searcher.search(["德国的首都在哪里？", "日本的首都", "เมืองหลวงของไทย"], 2)[:, 0].tolist() == [1, 2, 3]


def test_mining_chinese_with_an_english_model_says_so():
    from hardneg.mine import language_hint

    chinese = ["德国的首都在哪里？", "日本的首都", "Which city? 东京塔有多高"]
    hint = language_hint(chinese, "minilm")
    assert hint is not None and "--retriever hybrid" in hint and "'minilm' is an English model" in hint
    assert language_hint(chinese, "/models/BAAI/bge-small-en-v1.5") is not None
    assert language_hint(chinese, "thenlper/gte-small-zh") is None  # a model for the language
    assert language_hint(chinese, "paraphrase-multilingual-MiniLM-L12-v2") is None
    assert language_hint(["where is the capital of Germany", "北京"], "minilm") is None  # mostly English


def test_hybrid_retriever_runs_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from hardneg.cli import app

    result = CliRunner().invoke(
        app, ["mine", str(TINY_BEIR), "--model", "hashing", "--retriever", "hybrid", "--min-rank", "1", "--max-rank", "20", "--relative-margin", "off", "--json", "--out", "run"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["queries_mined"] == 8 and stats["selected"] == 8 * 10
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["retriever"] == "hybrid"


def test_a_run_file_ranks_the_candidates_as_the_retriever_it_came_from(tmp_path):
    """`--run FILE`: a ranking another retriever wrote (TREC run, colbert-ai's ranking.tsv, MS
    MARCO's three columns, gzipped) gives exactly the candidates of the retriever that wrote it:
    hardneg's own BM25 ranking written as a run mines like `--retriever bm25`. Ranks are positions
    in the run (ordered by score, as trec_eval does, not by the file's order); scores stay cosines."""
    import gzip

    from typer.testing import CliRunner

    from hardneg.cli import app

    runner = CliRunner()
    common = ["--model", "hashing", "--min-rank", "0", "--max-rank", "40", "--workdir", str(tmp_path / "wd"), "--quiet"]
    assert runner.invoke(app, ["mine", str(TINY_BEIR), *common, "--retriever", "bm25", "--out", "bm25"]).exit_code == 0
    reference = pq.read_table(tmp_path / "bm25" / "candidates.parquet")
    rows = sorted(reference.to_pylist(), key=lambda r: (r["query_id"], -r["rank"]))  # worst first: order is not rank
    forms = {
        "run.trec": "".join(f"{r['query_id']} Q0 {r['doc_id']} {r['rank'] + 1} {20 - r['rank'] / 4:.2f} bm25\n" for r in rows),
        "ranking.tsv": "".join(f"{r['query_id']}\t{r['doc_id']}\t{r['rank'] + 1}\t{-r['rank']}\n" for r in rows),
        "msmarco.tsv": "".join(f"{r['query_id']}\t{r['doc_id']}\t{r['rank'] + 1}\n" for r in rows),
    }
    for name, text in forms.items():
        (tmp_path / name).write_text(text)
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress(text.encode(), mtime=0))
        for path in (name, name + ".gz"):
            result = runner.invoke(app, ["mine", str(TINY_BEIR), *common, "--run", str(tmp_path / path), "--out", path + "-run"])
            assert result.exit_code == 0, result.output
            assert pq.read_table(tmp_path / (path + "-run") / "candidates.parquet").equals(reference), path
    manifest = json.loads((tmp_path / "run.trec-run" / "manifest.json").read_text())
    assert manifest["config"]["retriever"] == "run" and manifest["config"]["run_file"] == str(tmp_path / "run.trec")
    # Another ranking at the same path is mined again, not reused.
    (tmp_path / "run.trec").write_text("".join(line for line in forms["run.trec"].splitlines(True) if not line.startswith("q1 ")))
    result = runner.invoke(app, ["mine", str(TINY_BEIR), *common, "--run", str(tmp_path / "run.trec"), "--out", "run.trec-run", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["queries_skipped"] == {"not-in-run": 1} and "(not-in-run: the run file does not rank them)" in " ".join(stats["hints"])
    # Up to 1% of the lines may name documents the corpus lacks: left out, and said.
    (tmp_path / "extra.trec").write_text(forms["run.trec"] + "q1 Q0 gone 1 99 bm25\n")
    result = runner.invoke(app, ["mine", str(TINY_BEIR), *common, "--run", str(tmp_path / "extra.trec"), "--out", "extra", "--json"])
    assert result.exit_code == 0, result.output
    assert "1 line of the run file names a document the corpus lacks" in " ".join(json.loads(result.stdout)["stats"]["hints"])
    assert pq.read_table(tmp_path / "extra" / "candidates.parquet").equals(reference)
    # A shorter list than the window: the query has only those candidates.
    (tmp_path / "short.trec").write_text("".join(line for line in forms["run.trec"].splitlines(True) if int(line.split()[3]) <= 5))
    assert runner.invoke(app, ["mine", str(TINY_BEIR), *common, "--run", str(tmp_path / "short.trec"), "--out", "short"]).exit_code == 0
    short = pq.read_table(tmp_path / "short" / "candidates.parquet").to_pylist()
    assert Counter(r["query_id"] for r in short) == Counter({q: 5 for q in {r["query_id"] for r in rows}})


@pytest.mark.parametrize(("content", "needle"), [
    ("q1 Q0 d01 1 2.0 x\nq1 Q0 d01 2 1.0 x\n", "run.trec:2: document 'd01' is ranked twice for query 'q1' (first on line 1)"),
    ("q1 Q0 d01 one 2.0 x\n", "run.trec:1: rank 'one' is not a whole number"),
    ("q1 Q0 d01 1 high x\n", "run.trec:1: score 'high' is not a number"),
    ("q1 Q0 d01 1 nan x\n", "run.trec:1: score 'nan' is not a finite number"),
    ("q1 Q0 d01 1 2.0 x\nq1 d02 2\n", "run.trec:2: 3 fields, but the first line has 6"),
    ("q1 d01\n", "run.trec:1: expected a run line: 6 fields (TREC: qid Q0 docid rank score tag)"),
    ("q1 Q0 d01 1 2.0 x\nq1 Q0 zz9 2 1.0 x\n", "run.trec:2: document 'zz9' is not in the corpus: is this run over this corpus?"),
    ("\n", "run.trec: the run file ranks no document"),
])
def test_a_bad_run_file_is_one_error_naming_its_line(tmp_path, content, needle):
    from typer.testing import CliRunner

    from hardneg.cli import app

    (tmp_path / "run.trec").write_text(content)
    result = CliRunner().invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", "--run", "run.trec", "--out", "out"])
    assert result.exit_code == 1 and "Traceback" not in result.output and not (tmp_path / "out").exists(), result.output
    if "ranked twice" in needle or "not in the corpus" in needle:  # ids: checked against the corpus when mining starts
        assert result.stderr.strip().splitlines()[-1].startswith("Error: ") and needle in result.stderr.strip().splitlines()[-1]
    else:  # the file's lines: checked before any encoding, so the error is all there is
        assert result.stderr.startswith("Error: ") and needle in result.stderr and result.stderr.count("\n") == 1, result.output


def test_run_file_options_that_contradict_each_other_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="--run FILE is the ranking: it replaces --retriever bm25"):
        MineConfig(retriever="bm25", run_file="run.trec")
    with pytest.raises(ConfigError, match="--retriever run needs --run FILE"):
        MineConfig(retriever="run")
    assert MineConfig(run_file="run.trec").retriever == "run"


# --------------------------------------------------------------------------- teacher scores


class IndexTeacher:
    """A teacher that disagrees with the retriever: document d{i} scores i / 100 (later = better)."""

    name = "index-teacher"
    fingerprint = "index-teacher-v1"

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.score_of = {_doc_text(i): i / 100 for i in range(N_DOCS)}

    def score(self, pairs):
        self.pairs += list(pairs)
        return np.array([self.score_of[d] for _, d in pairs], dtype=np.float32)


def test_scores_from_teacher_moves_the_margin_onto_the_teachers_scores(ranked, tmp_path):
    window = {"min_rank": 10, "max_rank": 25, "num_negatives": 50, "relative_margin": 0.05, "cross_encoder": "t"}
    # The retriever's margin (cosines; lowest positive d15) removes the candidates ranked above d17 only.
    by_retriever, _ = _mine(ranked, tmp_path / "r", scorer=IndexTeacher(), **window)
    assert _eligible(by_retriever) and min(_eligible(by_retriever)) >= 17
    # The teacher's lowest positive score is d03's 0.03: every candidate (>= 0.10) is above 95% of it.
    teacher = IndexTeacher()
    by_teacher, stats = _mine(ranked, tmp_path / "t", scorer=teacher, scores_from="teacher", **window)
    assert _eligible(by_teacher) == []
    assert {r["filter"] for r in by_teacher if r["filter"] not in ("positive", "duplicate")} == {"relative-margin"}
    # The teacher scored every candidate left by the positive and duplicate filters, and both positives.
    alive = [r for r in by_teacher if r["filter"] not in ("positive", "duplicate")]
    assert len(teacher.pairs) == len(alive) + 2
    assert all(r["teacher_score"] == pytest.approx(int(r["doc_id"][1:]) / 100) for r in alive)
    assert stats["removed"]["relative-margin"] == len(alive)


def test_scores_from_teacher_keeps_what_the_teacher_ranks_below_the_positive(ranked, tmp_path):
    teacher = IndexTeacher()
    teacher.score_of = {_doc_text(i): (0.9 if i in (3, 15) else 0.5 - i / 100) for i in range(N_DOCS)}
    rows, _ = _mine(
        ranked, tmp_path, scorer=teacher, scores_from="teacher", cross_encoder="t", min_rank=0, max_rank=25,
        num_negatives=3, sampling="top", relative_margin=0.05,
    )
    # The retriever's margin would drop d00-d14 (they outrank the positive d15); the teacher keeps them.
    assert _eligible(rows)[:3] == [0, 1, 2]
    assert [int(r["doc_id"][1:]) for r in rows if r["selected"]] == [0, 1, 2]


def test_scores_from_teacher_needs_a_teacher_and_kd_depth_sets_the_window():
    from hardneg.config import build

    with pytest.raises(ConfigError, match="scores-from teacher needs --teacher"):
        MineConfig(scores_from="teacher")
    cfg = build(MineConfig, {}, "mine", kd_depth=8)
    assert (cfg.min_rank, cfg.max_rank, cfg.num_negatives, cfg.sampling) == (0, 16, 7, "top")
    # A KD row holds every one of the best-ranked candidates: the default margin is off unless asked for.
    assert (cfg.relative_margin, cfg.fallback_min_rank) == (None, None)
    assert build(MineConfig, {}, "mine", kd_depth=8, relative_margin=0.1).relative_margin == 0.1
    assert build(MineConfig, {}, "mine", kd_depth=8, max_rank=40).max_rank == 40
    with pytest.raises(ConfigError, match=r"kd-depth must be >= 2 \(a positive and a candidate\), got 1"):
        build(MineConfig, {}, "mine", kd_depth=1)  # said of kd-depth, not of the num-negatives 0 it would set
    with pytest.raises(ConfigError, match="kd-depth 8 sets min-rank, sampling; leave them unset"):
        build(MineConfig, {}, "mine", kd_depth=8, min_rank=10, sampling="random")
    with pytest.raises(ConfigError, match="kd-depth 8 mines the 7 best-ranked candidates"):
        MineConfig(kd_depth=8)  # the preset is applied when flags and files are merged, not silently here


def test_execution_knobs_do_not_invalidate_a_run(tmp_path, tiny_beir):
    """Batch sizes and chunking say how a run goes, not what it finds: changing them reuses the run."""
    from hardneg.pipeline import run_mine

    first = run_mine(tiny_beir, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=0, max_rank=10))
    assert not first.reused
    for knobs in ({"query_batch": 1}, {"chunk_queries": 3, "search_chunk": 7}, {"ce_batch_size": 2}):
        again = run_mine(tiny_beir, tmp_path / "run", EmbedConfig(model="hashing", batch_size=2),
                         IndexConfig(), MineConfig(min_rank=0, max_rank=10, **knobs))
        assert again.reused, knobs
    changed = run_mine(tiny_beir, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=1, max_rank=10))
    assert not changed.reused


def test_stratified_sampling_takes_one_negative_per_rank_band_and_fills_empty_bands():
    from hardneg.sampling import sample_negatives

    config = MineConfig(min_rank=0, max_rank=100, num_negatives=4, sampling="stratified")
    eligible = list(range(100))
    for seed in range(20):
        picked = sample_negatives(eligible, [0.0] * 100, 1.0, config, np.random.default_rng(seed), ranks=eligible)
        assert [r // 25 for r in picked] == [0, 1, 2, 3]
    # Filters emptied the two middle bands: still 4 negatives, 2 of them from the outer bands' rest.
    survivors = list(range(0, 25)) + list(range(75, 100))
    picked = sample_negatives(list(range(50)), [0.0] * 50, 1.0, config, np.random.default_rng(0), ranks=survivors)
    assert len(set(picked)) == 4
    # Deterministic for a seed.
    again = sample_negatives(list(range(50)), [0.0] * 50, 1.0, config, np.random.default_rng(0), ranks=survivors)
    assert picked == again


def test_the_summary_reports_the_gap_between_each_query_s_lowest_positive_and_its_negatives(tmp_path, tiny_beir):
    from hardneg.pipeline import run_mine

    result = run_mine(tiny_beir, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=0, max_rank=20))
    queries = {r["query_id"]: r for r in pq.read_table(tmp_path / "run" / "queries.parquet").to_pylist()}
    gaps = sorted(
        min(queries[r["query_id"]]["positive_scores"]) - r["score"]
        for r in pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist() if r["selected"]
    )
    stats = result.stats.to_dict()["score_gaps"]
    assert stats["p0"] == pytest.approx(gaps[0], abs=1e-3) and stats["p100"] == pytest.approx(gaps[-1], abs=1e-3)
    assert stats["p50"] == pytest.approx(float(np.median(gaps)), abs=1e-3)


def _hub_corpus(root: Path, order: list[int]) -> Path:
    """40 queries that all see the same few hub documents near the top; queries written in ``order``."""
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"hub{i}", "text": "common words shared by everything " * 3 + f"hub {i}"} for i in range(3)]
    docs += [{"_id": f"d{i}", "text": f"topic {i} special answer words {i} common"} for i in range(60)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": f"q{i:02d}", "text": f"topic {i} common words shared"} for i in range(40)]
    (root / "queries.jsonl").write_text("".join(json.dumps(queries[i]) + "\n" for i in order))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i:02d}\td{i}\t1\n" for i in order))
    return root


def test_max_per_doc_caps_hub_documents_refills_and_ignores_query_order(tmp_path):
    from hardneg.pipeline import run_mine

    config = MineConfig(min_rank=0, max_rank=12, num_negatives=4, sampling="top", dedup_threshold=None)
    plain = run_mine(_hub_corpus(tmp_path / "a", list(range(40))), tmp_path / "plain", EmbedConfig(model="hashing"), IndexConfig(), config)
    rows = pq.read_table(tmp_path / "plain" / "candidates.parquet").to_pylist()
    uses = Counter(r["doc_id"] for r in rows if r["selected"])
    assert max(uses.values()) > 5  # the hubs dominate without the cap

    capped_config = MineConfig(min_rank=0, max_rank=12, num_negatives=4, sampling="top", dedup_threshold=None, max_per_doc=5)
    runs = []
    for name, order in (("b", list(range(40))), ("c", list(range(39, -1, -1)))):
        result = run_mine(_hub_corpus(tmp_path / name, order), tmp_path / f"run-{name}", EmbedConfig(model="hashing"), IndexConfig(),
                          capped_config)
        rows = pq.read_table(tmp_path / f"run-{name}" / "candidates.parquet").to_pylist()
        selected = sorted((r["query_id"], r["doc_id"]) for r in rows if r["selected"])
        assert max(Counter(d for _, d in selected).values()) <= 5
        stats = result.stats.to_dict()
        assert stats["selected"] == len(selected) and stats["removed"]["max-per-doc"] > 0
        assert all(r["filter"] == "max-per-doc" for r in rows if not r["selected"] and r["filter"] == "max-per-doc")
        runs.append(selected)
        # Refilled from the next-ranked candidates: more than the plain run minus what the cap took.
        assert plain.stats.selected - stats["removed"]["max-per-doc"] < len(selected) <= plain.stats.selected
    assert runs[0] == runs[1]  # the same negatives whatever the order of the queries


def test_same_group_negatives_share_a_positives_title_and_are_sampled_first(tmp_path):
    from hardneg.pipeline import run_mine

    root = tmp_path / "data"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"a{i}", "title": "Article A", "text": f"alpha paragraph {i} about rivers and cities"} for i in range(6)]
    docs += [{"_id": f"b{i}", "title": f"Other {i}", "text": f"alpha paragraph {i} about rivers and towns"} for i in range(30)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "alpha paragraph about rivers"}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\ta0\t1\n")
    config = {"min_rank": 0, "max_rank": 36, "num_negatives": 5, "dedup_threshold": None, "sampling": "random", "relative_margin": None}
    result = run_mine(root, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(same_group="title", **config))
    selected = {r["doc_id"] for r in pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist() if r["selected"]}
    assert selected == {f"a{i}" for i in range(1, 6)}  # the five other paragraphs of the positive's article
    assert result.stats.same_group_selected == 5
    plain = run_mine(root, tmp_path / "plain", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(**config))
    assert plain.stats.same_group_selected == 0


def test_simans_concentrates_around_the_positive_on_cosine_scales():
    """On cosines (gaps ~0.1) SimANS must still prefer negatives scored near the positive."""
    from hardneg.sampling import sample_negatives

    scores = list(np.linspace(0.05, 0.75, 100))  # eligible cosines below a positive at 0.78
    simans, uniform = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        keys = rng.random(100)
        pick = sample_negatives(list(range(100)), scores, 0.78, MineConfig(num_negatives=10, sampling="simans"), keys=keys)
        simans += [0.78 - scores[i] for i in pick]
        pick = sample_negatives(list(range(100)), scores, 0.78, MineConfig(num_negatives=10, sampling="random"), keys=keys)
        uniform += [0.78 - scores[i] for i in pick]
    assert np.mean(simans) < 0.6 * np.mean(uniform)


def test_same_cluster_negatives_come_from_the_positives_kmeans_cluster(tmp_path):
    from hardneg.clusters import kmeans
    from hardneg.pipeline import run_mine

    root = tmp_path / "data"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"a{i}", "text": f"volcano lava eruption magma crater ash {i}"} for i in range(6)]
    docs += [{"_id": f"b{i}", "text": f"volcano recipe bread flour oven yeast {i}"} for i in range(30)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "volcano"}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\ta0\t1\n")
    config = {"min_rank": 0, "max_rank": 36, "num_negatives": 5, "dedup_threshold": None, "sampling": "random", "relative_margin": None}
    result = run_mine(root, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(same_cluster=2, **config))
    selected = {r["doc_id"] for r in pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist() if r["selected"]}
    assert selected == {f"a{i}" for i in range(1, 6)}  # the positive's topic, whatever the ranking says
    assert result.stats.same_group_selected == 5
    # The clustering is deterministic for a seed, and two well-separated topics are found.
    vectors = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    vectors[:100, 0] += 6
    vectors[100:, 1] += 6
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = kmeans(vectors, 2, seed=3)
    assert np.array_equal(labels, kmeans(vectors, 2, seed=3))
    assert len(set(labels[:100])) == 1 and len(set(labels[100:])) == 1 and labels[0] != labels[100]
    with pytest.raises(ConfigError, match="choose one"):
        MineConfig(same_cluster=2, same_group="title")


# --------------------------------------------------------------------------- margin fallback

EMPTYING_MARGIN = 0.4  # 60% of the lowest positive (0.80): every candidate in [0, 25) scores above it


def _selected(rows: list[dict]) -> list[int]:
    return [int(r["doc_id"][1:]) for r in rows if r["selected"]]


def test_fallback_gives_a_query_the_margin_emptied_the_negatives_random_sampling_from_its_rank_gives(ranked, tmp_path):
    rows, stats = _mine(ranked, tmp_path / "a", min_rank=0, max_rank=25, num_negatives=3, sampling="top",
                        relative_margin=EMPTYING_MARGIN)
    assert _selected(rows) == [] and stats["removed"]["relative-margin"] > 0  # the margin alone drops the query

    rows, stats = _mine(ranked, tmp_path / "b", min_rank=0, max_rank=25, num_negatives=3, sampling="top",
                        relative_margin=EMPTYING_MARGIN, fallback_min_rank=10)
    window, _ = _mine(ranked, tmp_path / "c", min_rank=10, max_rank=25, num_negatives=3, sampling="random")
    picked = _selected(rows)
    assert len(picked) == 3 and picked == _selected(window)  # the default window's own draw
    assert set(picked) <= set(BASE_ELIGIBLE)  # never a positive, a duplicate or a rank under 10
    by_doc = {int(r["doc_id"][1:]): r for r in rows}
    assert all(by_doc[i]["filter"] == "relative-margin" for i in picked)  # the run shows what the fallback overrode
    assert by_doc[15]["filter"] == "positive" and by_doc[12]["filter"] == "duplicate"
    assert (stats["fallback_queries"], stats["fallback_selected"], stats["selected"]) == (1, 3, 3)
    removed = sum(1 for r in rows if r["filter"] == "relative-margin" and not r["selected"])
    assert stats["removed"]["relative-margin"] == removed  # fallback picks are selected, not removed
    assert stats["queries_short"] == 0


def test_fallback_only_tops_up_a_short_query_from_its_rank_on(ranked, tmp_path):
    # Threshold 0.59: d23 and d24 (0.57, 0.54) pass the margin; the rest of the window does not.
    margin = 1 - 0.59 / MIN_POSITIVE
    rows, stats = _mine(ranked, tmp_path / "a", min_rank=0, max_rank=25, num_negatives=5, sampling="top",
                        relative_margin=margin, fallback_min_rank=17)
    picked = _selected(rows)
    assert {23, 24} <= set(picked) and len(picked) == 5
    assert set(picked) - {23, 24} <= {17, 18, 19, 22}  # margin-removed, rank >= 17, not a duplicate
    assert stats["fallback_selected"] == 3
    # A query the margin leaves enough survivors takes nothing from the fallback.
    rows, stats = _mine(ranked, tmp_path / "b", min_rank=0, max_rank=25, num_negatives=2, sampling="top",
                        relative_margin=margin, fallback_min_rank=17)
    assert _selected(rows) == [23, 24] and stats["fallback_selected"] == 0


def test_fallback_overrides_only_the_margins_and_the_teacher_still_judges_what_it_takes_back(ranked, tmp_path):
    # max-score removes d00-d17 (cosine > 0.75) before the margin sees them: the fallback leaves them out.
    rows, _ = _mine(ranked, tmp_path / "a", min_rank=0, max_rank=25, num_negatives=50, sampling="top",
                    relative_margin=EMPTYING_MARGIN, max_score=0.75, fallback_min_rank=0)
    assert _selected(rows) == [i for i in BASE_ELIGIBLE if _score(i) <= 0.75]
    # A teacher scores the revived candidates and its threshold removes the one it finds relevant.
    ce = FakeCrossEncoder(relevant={_doc_text(18)}, borderline=set())
    rows, stats = _mine(ranked, tmp_path / "b", scorer=ce, min_rank=0, max_rank=25, num_negatives=50, sampling="top",
                        relative_margin=EMPTYING_MARGIN, fallback_min_rank=10, ce_max_score=0.5, cross_encoder="fake")
    by_doc = {int(r["doc_id"][1:]): r for r in rows}
    assert by_doc[18]["filter"] == "cross-encoder" and not by_doc[18]["selected"]
    assert _selected(rows) == [i for i in BASE_ELIGIBLE if i != 18]
    assert all(by_doc[i]["teacher_score"] is not None for i in _selected(rows))
    assert stats["fallback_selected"] == len(BASE_ELIGIBLE) - 1


def test_fallback_given_explicitly_needs_a_margin_and_a_rank_inside_the_window():
    from hardneg.config import build

    with pytest.raises(ConfigError, match="set --relative-margin or --absolute-margin"):
        build(MineConfig, {}, "mine", relative_margin="off", fallback_min_rank=10)
    with pytest.raises(ConfigError, match="inside the window"):
        build(MineConfig, {}, "mine", fallback_min_rank=110)
    with pytest.raises(ConfigError, match="inside the window"):
        build(MineConfig, {"mine": {"min_rank": 20, "fallback_min_rank": 10}}, "mine")
    assert build(MineConfig, {}, "mine", relative_margin="off", absolute_margin=0.05).fallback_min_rank == 10
    # The default's fallback adapts instead: off without a margin, from min-rank under it.
    assert build(MineConfig, {}, "mine", relative_margin="off").fallback_min_rank is None
    assert build(MineConfig, {}, "mine", min_rank=20).fallback_min_rank == 20
    assert build(MineConfig, {}, "mine", max_rank=8).fallback_min_rank is None
    assert MineConfig(relative_margin=None).fallback_min_rank is None


def test_short_queries_hint_names_the_fallback_when_a_margin_emptied_them(ranked, tmp_path):
    _, stats = _mine(ranked, tmp_path, min_rank=0, max_rank=25, num_negatives=3, sampling="top", relative_margin=EMPTYING_MARGIN)
    assert stats["queries_short"] == 1
    assert any("--fallback-min-rank 10" in h for h in stats["hints"])


def test_reports_and_exports_count_a_fallback_negative_as_selected_not_removed(ranked, tmp_path):
    from hardneg.export import read_run
    from hardneg.report import relative_scores

    rows, stats = _mine(ranked, tmp_path, min_rank=0, max_rank=25, num_negatives=3, sampling="top",
                        relative_margin=EMPTYING_MARGIN, fallback_min_rank=10)
    _, negatives, removed = relative_scores(tmp_path / "run")
    assert len(negatives) == 3 and len(removed) == stats["removed"]["relative-margin"]
    (query,) = read_run(tmp_path / "run").queries
    assert sorted(int(d[1:]) for d in query.negatives) == _selected(rows)
