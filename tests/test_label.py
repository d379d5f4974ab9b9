"""Human judgments: import validation, and how mining uses them (positives, confirmed negatives)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import EmbedConfig, IndexConfig, MineConfig, SelectConfig
from hardneg.embed import embed
from hardneg.errors import InputError
from hardneg.index import build_index
from hardneg.inputs import load_input
from hardneg.label import import_labels, parse_label, read_judgments
from hardneg.mine import mine
from hardneg.selection import select
from tests.conftest import TableEncoder

runner = CliRunner()
N = 30  # documents per query; document i of a query is ranked i-th for it


def build_planes(root: Path, queries: int, known: dict[int, int], hidden: dict[int, int] | None = None) -> TableEncoder:
    """A BEIR folder: query k lives in its own plane, where its document i sits at angle 0.04 (i + 1),
    so it ranks i-th (other queries' documents score 0). ``known[k]`` is the labelled positive's
    rank; ``hidden[k]`` a relevant document left out of the qrels (an unlabelled positive)."""
    (root / "qrels").mkdir(parents=True)
    dim = 2 * queries
    vectors: dict[str, np.ndarray] = {}
    with open(root / "corpus.jsonl", "w") as corpus, open(root / "queries.jsonl", "w") as qs:
        for k in range(queries):
            q = np.zeros(dim)
            q[2 * k] = 1.0
            text = f"question {k}"
            vectors[text] = q
            qs.write(json.dumps({"_id": f"q{k}", "text": text}) + "\n")
            for i in range(N):
                v = np.zeros(dim)
                v[2 * k], v[2 * k + 1] = math.cos(0.04 * (i + 1)), math.sin(0.04 * (i + 1))
                doc = f"answer {k} number {i}"
                vectors[doc] = v
                corpus.write(json.dumps({"_id": f"q{k}d{i:02d}", "title": "", "text": doc}) + "\n")
    lines = "".join(f"q{k}\tq{k}d{i:02d}\t1\n" for k, i in known.items())
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + lines)
    return TableEncoder(vectors)


@pytest.fixture
def planes(tmp_path: Path) -> tuple[Path, Path]:
    """(index, first mining run) over 4 queries, known positive at rank 3, hidden one at rank 11."""
    root = tmp_path / "planes"
    encoder = build_planes(root, 4, known={k: 3 for k in range(4)})
    emb = embed(load_input(root), tmp_path / "emb", EmbedConfig(), encoder=encoder).path
    idx = build_index(emb, tmp_path / "idx", IndexConfig(backend="exact")).path
    mine(idx, tmp_path / "run", _config())
    return idx, tmp_path / "run"


def _config(**kw: object) -> MineConfig:
    base = dict(min_rank=10, max_rank=25, num_negatives=3, sampling="top", dedup_threshold=None, relative_margin=None)
    base.update(kw)
    return MineConfig(**base)  # type: ignore[arg-type]


def _selected(run: Path, qid: str = "q0") -> list[str]:
    rows = pq.read_table(run / "candidates.parquet").to_pylist()
    return [r["doc_id"] for r in rows if r["selected"] and r["query_id"] == qid]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [("relevant", "relevant"), ("Relevant ", "relevant"), ("1", "relevant"), (1, "relevant"), (True, "relevant"),
     ("not_relevant", "not_relevant"), ("not relevant", "not_relevant"), ("no", "not_relevant"), (0, "not_relevant"),
     ("", "skip"), (None, "skip"), ("skip", "skip"), ("maybe", None), (2, None), ([1], None)],
)
def test_labels_are_parsed_strictly_with_common_spellings(value, expected):
    assert parse_label(value) == expected


# --------------------------------------------------------------------------- mining with judgments


def test_relevant_becomes_a_positive_and_not_relevant_is_sampled_first(planes, tmp_path):
    idx, run = planes
    assert _selected(run) == ["q0d10", "q0d11", "q0d12"]
    labels = tmp_path / "labels"
    rows = [
        {"query_id": "q0", "doc_id": "q0d11", "label": "relevant"},
        {"query_id": "q0", "doc_id": "q0d05", "label": "not_relevant"},  # above the window
        {"query_id": "q0", "doc_id": "q0d20", "label": "not_relevant"},  # inside it
    ]
    import_labels(_write_jsonl(tmp_path / "j.jsonl", rows), run, labels)
    result = mine(idx, tmp_path / "run2", _config(labels=str(labels)))
    table = {(r["query_id"], r["doc_id"]): r for r in pq.read_table(tmp_path / "run2" / "candidates.parquet").to_pylist()}
    assert table[("q0", "q0d11")]["filter"] == "positive"
    assert _selected(tmp_path / "run2") == ["q0d05", "q0d10", "q0d20"]  # rank order: confirmed d05, d20, then the top one
    assert table[("q0", "q0d05")]["confirmed"] and table[("q0", "q0d20")]["confirmed"]
    assert not table[("q0", "q0d10")]["confirmed"]
    positives = dict(zip(*pq.read_table(tmp_path / "run2" / "queries.parquet", columns=["query_id", "positive_ids"]).to_pydict().values()))
    assert positives["q0"] == ["q0d03", "q0d11"]
    assert _selected(tmp_path / "run2", "q1") == ["q1d10", "q1d11", "q1d12"]  # other queries unchanged
    assert result.stats.labels == {
        "judgments": 3, "positives_added": 1, "judged_not_relevant": 2, "unmatched": 0,
        "confirmed_in_window": 2, "confirmed_selected": 2,
    }
    assert result.stats.rank_histogram[0] == {"from": 0, "to": 10, "count": 1}


def test_a_confirmed_negative_is_exempt_from_the_score_rules(planes, tmp_path):
    idx, run = planes
    # The positive (rank 3) scores cos(0.16) = 0.987; a relative margin of 0.2 removes scores above
    # 0.790 = cos(0.659): ranks up to 15.
    without = mine(idx, tmp_path / "plain", _config(relative_margin=0.2))
    assert _selected(tmp_path / "plain") == ["q0d16", "q0d17", "q0d18"]
    assert without.stats.removed["relative-margin"] > 0
    labels = tmp_path / "labels"
    import_labels(_write_jsonl(tmp_path / "j.jsonl", [{"query_id": "q0", "doc_id": "q0d12", "label": "no"}]), run, labels)
    mine(idx, tmp_path / "run2", _config(relative_margin=0.2, labels=str(labels)))
    assert _selected(tmp_path / "run2") == ["q0d12", "q0d16", "q0d17"]
    # With the margin fallback on, the confirmed negative still counts as one of the query's survivors,
    # and the fallback never takes it as one of its own.
    mine(idx, tmp_path / "run3", _config(relative_margin=0.2, labels=str(labels), fallback_min_rank=10, num_negatives=12))
    rows = {r["doc_id"]: r for r in pq.read_table(tmp_path / "run3" / "candidates.parquet").to_pylist() if r["query_id"] == "q0"}
    assert rows["q0d12"]["selected"] and rows["q0d12"]["confirmed"] and rows["q0d12"]["filter"] == ""
    picked = [d for d, r in rows.items() if r["selected"] and r["filter"] == "relative-margin"]
    assert picked and all(rows[d]["rank"] >= 10 for d in picked)
    assert len(picked) == 2 and "q0d12" not in picked  # 9 pass the margin + 1 confirmed: 2 short
    assert len([d for d, r in rows.items() if r["selected"]]) == 12


def test_qrels_scored_zero_are_confirmed_negatives_and_never_positives(tmp_path):
    """TREC-style qrels that judge documents not relevant (score 0, or -1) say what a `--labels` "not
    relevant" says: those documents are confirmed negatives, eligible above --min-rank, exempt from
    the score rules and sampled first. A document judged both ways stays a positive.
    --no-qrels-negatives reads them as ordinary candidates (as sentence-transformers does)."""
    root = tmp_path / "planes"
    encoder = build_planes(root, 2, known={0: 3, 1: 3})
    with open(root / "qrels" / "train.tsv", "a") as fh:
        fh.write("q0\tq0d05\t0\nq0\tq0d20\t-1\nq0\tq0d03\t0\nq1\tq1d01\t0\n")  # q0d03 is also judged 1
    emb = embed(load_input(root), tmp_path / "emb", EmbedConfig(), encoder=encoder).path
    idx = build_index(emb, tmp_path / "idx", IndexConfig(backend="exact")).path
    result = mine(idx, tmp_path / "run", _config(relative_margin=0.2))
    table = {(r["query_id"], r["doc_id"]): r for r in pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist()}
    # q0d05 (rank 5, above the window and the margin) and q0d20 come first, then the margin's survivors.
    assert _selected(tmp_path / "run") == ["q0d05", "q0d16", "q0d20"]
    assert table[("q0", "q0d05")]["confirmed"] and table[("q0", "q0d05")]["filter"] == ""
    assert _selected(tmp_path / "run", "q1") == ["q1d01", "q1d16", "q1d17"]
    positives = dict(zip(*pq.read_table(tmp_path / "run" / "queries.parquet", columns=["query_id", "positive_ids"]).to_pydict().values()))
    assert positives == {"q0": ["q0d03"], "q1": ["q1d03"]}
    assert result.stats.labels == {"qrels_not_relevant": 3, "confirmed_in_window": 3, "confirmed_selected": 3}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["qrels_negatives"] is True
    # Already judged, so never offered for labelling again.
    offered = {c["doc_id"] for item in select(tmp_path / "run", tmp_path / "sel", SelectConfig(budget=2, candidates=12)).chosen
               for c in item["candidates"]}
    assert {"q0d01", "q0d04", "q1d02"} <= offered and not {"q0d05", "q1d01"} & offered
    plain = mine(idx, tmp_path / "plain", _config(relative_margin=0.2, qrels_negatives=False))
    assert _selected(tmp_path / "plain") == ["q0d16", "q0d17", "q0d18"]
    assert not any(r["confirmed"] for r in pq.read_table(tmp_path / "plain" / "candidates.parquet").to_pylist())
    assert plain.stats.labels == {}


def test_new_judgments_at_the_same_path_make_the_run_stale(planes, tmp_path):
    idx, run = planes
    labels = tmp_path / "labels"
    import_labels(_write_jsonl(tmp_path / "a.jsonl", [{"query_id": "q0", "doc_id": "q0d13", "label": "no"}]), run, labels)
    first = mine(idx, tmp_path / "run2", _config(labels=str(labels)))
    import_labels(_write_jsonl(tmp_path / "b.jsonl", [{"query_id": "q0", "doc_id": "q0d13", "label": "yes"}]), run, labels)
    second = mine(idx, tmp_path / "run2", _config(labels=str(labels)))
    assert not second.reused and second.manifest["fingerprint"] != first.manifest["fingerprint"]
    judged, _ = read_judgments(labels)
    assert judged == {"q0": {"q0d13": "relevant"}}  # replaced, not duplicated


def test_oracle_annotator_removes_hidden_positives_from_the_negatives(tmp_path):
    """Simulated annotation: select -> an oracle labels from the hidden qrels -> import -> re-mine.
    The false-negative proxy (hidden positives selected as negatives) must drop."""
    root = tmp_path / "planes"
    known = {k: 3 for k in range(6)}
    hidden = {k: 11 for k in range(6)}  # relevant, unlabelled, ranked inside the window
    encoder = build_planes(root, 6, known)
    emb = embed(load_input(root), tmp_path / "emb", EmbedConfig(), encoder=encoder).path
    idx = build_index(emb, tmp_path / "idx", IndexConfig(backend="exact")).path
    # A seed whose random sample holds hidden positives (2 of 6 here), so that labelling has something to fix.
    config = _config(sampling="random", num_negatives=5, seed=1)
    mine(idx, tmp_path / "run", config)

    def proxy(run: Path) -> int:
        return sum(f"q{k}d{i:02d}" in _selected(run, f"q{k}") for k, i in hidden.items())

    before = proxy(tmp_path / "run")
    assert before >= 2  # random sampling picks several of them
    chosen = select(tmp_path / "run", tmp_path / "sel", SelectConfig(budget=6, candidates=15)).chosen
    rows = []
    for item in chosen:  # the oracle: relevant iff hidden positive
        k = int(item["query_id"][1:])
        for cand in item["candidates"]:
            cand["label"] = "relevant" if cand["doc_id"] == f"q{k}d{hidden[k]:02d}" else "not_relevant"
        rows.append(item)
    _write_jsonl(tmp_path / "labelled.jsonl", rows)
    import_labels(tmp_path / "labelled.jsonl", tmp_path / "run", tmp_path / "labels")
    mine(idx, tmp_path / "run2", _config(sampling="random", num_negatives=5, seed=3, labels=str(tmp_path / "labels")))
    assert proxy(tmp_path / "run2") == 0 < before


# --------------------------------------------------------------------------- import validation


def _bad_cases(tmp_path: Path) -> list[tuple[str, str, str]]:
    good = '{"query_id": "q0", "doc_id": "q0d12", "label": "relevant"}\n'
    return [
        ("unknown-query.jsonl", good + '{"query_id": "nope", "doc_id": "q0d12", "label": "relevant"}\n', r":2: query_id: 'nope' is not a query"),
        ("unknown-doc.jsonl", good + '{"query_id": "q0", "doc_id": "zzz", "label": "relevant"}\n', r":2: doc_id: 'zzz' is not in the corpus"),
        ("bad-label.jsonl", good + '{"query_id": "q0", "doc_id": "q0d13", "label": "maybe"}\n', r":2: label: 'maybe' is not one of"),
        ("truncated.jsonl", good + '{"query_id": "q0", "doc_\n', r":2: malformed JSON"),
        ("missing-doc.jsonl", '{"query_id": "q0", "label": "relevant"}\n', r":1: expected 'candidates'"),
        ("wrong-type.jsonl", '{"query_id": ["q0"], "doc_id": "q0d12", "label": "yes"}\n', r":1: query_id: missing or not a string"),
        ("positive-as-negative.jsonl", '{"query_id": "q0", "doc_id": "q0d03", "label": "not_relevant"}\n', r":1: label: 'q0d03' is a known positive"),
        ("bad-candidate.jsonl", '{"query_id": "q0", "candidates": [{"doc_id": "q0d12", "label": "x"}]}\n', r":1: candidates\[0\].label"),
        ("no-column.csv", "query_id,doc_id\nq0,q0d12\n", r":1: header: missing column\(s\) label"),
        ("bad-row.csv", "query_id,doc_id,label\nq0,q0d12,relevant\nq0,q0d13,perhaps\n", r":3: label: 'perhaps'"),
    ]


def test_every_bad_judgment_file_is_refused_with_its_line_and_nothing_changes(planes, tmp_path):
    _, run = planes
    labels = tmp_path / "labels"
    import_labels(_write_jsonl(tmp_path / "ok.jsonl", [{"query_id": "q1", "doc_id": "q1d12", "label": "relevant"}]), run, labels)
    before = {p.name: p.read_bytes() for p in labels.iterdir()}
    for name, content, message in _bad_cases(tmp_path):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(InputError, match=message):
            import_labels(path, run, labels)
        assert {p.name: p.read_bytes() for p in labels.iterdir()} == before, name
        with pytest.raises(InputError):
            import_labels(path, run, tmp_path / f"fresh-{name}")
        assert not (tmp_path / f"fresh-{name}").exists()


def test_skip_invalid_imports_the_good_rows_and_reports_the_bad(planes, tmp_path):
    _, run = planes
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"query_id": "q0", "doc_id": "q0d12", "label": "relevant"}\n'
        '{"query_id": "q0", "doc_\n'
        '{"query_id": "q0", "doc_id": "q0d13", "label": "perhaps"}\n'
        '{"query_id": "q0", "doc_id": "q0d14", "label": "not_relevant"}\n'
        '{"query_id": "q0", "doc_id": "q0d15", "label": ""}\n'
    )
    result = import_labels(path, run, tmp_path / "labels", skip_invalid=True)
    assert (result.stats.relevant, result.stats.not_relevant, result.stats.skipped, result.stats.invalid) == (1, 1, 1, 2)
    assert any(":2: malformed JSON" in p for p in result.stats.problems)
    assert any(":3: label" in p for p in result.stats.problems)
    assert read_judgments(tmp_path / "labels")[0] == {"q0": {"q0d12": "relevant", "q0d14": "not_relevant"}}



def test_skip_invalid_reads_a_json_array_of_judgments_and_ends_where_the_array_breaks(planes, tmp_path):
    """A JSON array of judgments: a non-object element is one problem and the rest is read; a
    malformed array is one problem and the import ends there (it never re-reads the same error)."""
    _, run = planes
    path = tmp_path / "array.json"
    path.write_text(
        '[\n {"query_id": "q0", "doc_id": "q0d12", "label": "relevant"},\n 7,\n'
        ' {"query_id": "q0", "doc_id": "q0d14", "label": "not_relevant"}\n]\n'
    )
    result = import_labels(path, run, tmp_path / "labels", skip_invalid=True)
    assert (result.stats.relevant, result.stats.not_relevant, result.stats.invalid) == (1, 1, 1)
    assert any(":3: expected a JSON object in the array" in p for p in result.stats.problems)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"query_id": "q0", "doc_id": "q0d12", "label": "relevant"},\n {"query_id": }\n]\n')
    result = import_labels(broken, run, tmp_path / "labels-broken", skip_invalid=True)
    assert (result.stats.relevant, result.stats.invalid) == (1, 1)
    assert [p for p in result.stats.problems if ":3: malformed JSON" in p] == result.stats.problems


def test_select_label_import_mine_round_trip_through_the_cli(planes, tmp_path):
    idx, run = planes
    out = runner.invoke(app, ["select", str(run), "--budget", "2", "--candidates", "4", "--out", str(tmp_path / "sel")])
    assert out.exit_code == 0, out.output
    csv_path = tmp_path / "sel" / "to_label.csv"
    lines = csv_path.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "query_id,query,rank,doc_id,score,in_run,document,positive,label"
    assert len(lines) == 1 + 2 * 4
    lines[1] = lines[1] + "relevant"
    lines[2] = lines[2] + "not relevant"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    bad = runner.invoke(app, ["label", "import", str(tmp_path / "sel" / "to_label.jsonl"), "--run", str(tmp_path / "nowhere")])
    assert bad.exit_code == 1 and "Error:" in bad.output
    ok = runner.invoke(app, ["label", "import", str(csv_path), "--run", str(run)])
    assert ok.exit_code == 0, ok.output
    assert "imported 1 relevant and 1 not-relevant" in ok.output
    labels = run.with_name(run.name + "-labels")
    mined = runner.invoke(app, ["mine", str(idx), "--labels", str(labels), "--out", str(tmp_path / "run2"), "--json",
                                "--min-rank", "10", "--max-rank", "25", "-n", "3", "--sampling", "top"])
    assert mined.exit_code == 0, mined.output
    assert json.loads(mined.output)["stats"]["labels"]["positives_added"] == 1


def test_a_csv_resaved_by_a_spreadsheet_imports_the_same_labels(planes, tmp_path):
    """Excel saves CSV with ';' where the decimal separator is a comma (French, German), and 'Text'
    with tabs; both import as the file hardneg wrote. A file saved in a legacy code page is one
    error saying how to save it as UTF-8."""
    import csv

    _, run = planes
    assert runner.invoke(app, ["select", str(run), "--budget", "2", "--candidates", "3", "--out", str(tmp_path / "sel")]).exit_code == 0
    with open(tmp_path / "sel" / "to_label.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    label = rows[0].index("label")
    for i, row in enumerate(rows[1:]):
        row[label] = "relevant" if i == 0 else "not_relevant"
    rows[1][rows[0].index("document")] = "Café; à la crème, \"très\" bon"  # delimiters and quotes inside a cell
    counts = {}
    for name, delimiter, encoding in [("comma", ",", "utf-8-sig"), ("semicolon", ";", "utf-8-sig"), ("tab", "\t", "utf-8"),
                                      ("semicolon-no-bom", ";", "utf-8")]:
        path = tmp_path / f"{name}.csv"
        with open(path, "w", encoding=encoding, newline="") as fh:
            csv.writer(fh, delimiter=delimiter).writerows(rows)
        result = runner.invoke(app, ["label", "import", str(path), "--run", str(run), "--into", str(tmp_path / f"labels-{name}"), "--json"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        counts[name] = json.loads(result.stdout)["stats"]
    assert all(c == counts["comma"] for c in counts.values()) and counts["comma"]["relevant"] == 1
    # Annotations re-saved with ';' in place are annotations: select does not wipe them.
    (tmp_path / "sel" / "to_label.csv").write_bytes((tmp_path / "semicolon.csv").read_bytes())
    again = runner.invoke(app, ["select", str(run), "--budget", "2", "--candidates", "3", "--out", str(tmp_path / "sel")])
    assert again.exit_code == 1 and f"{len(rows) - 1} annotation" in again.stderr, again.output
    legacy = tmp_path / "legacy.csv"
    with open(legacy, "w", encoding="cp1252", newline="") as fh:
        csv.writer(fh, delimiter=";").writerows(rows)
    result = runner.invoke(app, ["label", "import", str(legacy), "--run", str(run), "--into", str(tmp_path / "labels-legacy")])
    assert result.exit_code == 1 and "not valid UTF-8" in result.stderr and "CSV UTF-8" in result.stderr
    assert not (tmp_path / "labels-legacy").exists()
