"""`hardneg report`: one self-contained HTML file plus PNG plots for a mining run or a loop.

Plots (matplotlib, headless):
- ``scores.png``: positive vs selected-negative vs removed-candidate score distributions;
- ``ranks.png``: histogram of the ranks of the selected negatives;
- ``filters.png``: candidates removed by each filter, next to what was eligible and selected;
- ``rounds.png`` (a loop): the dev metrics per round, and how much the negatives changed.

The HTML embeds the PNGs (base64), the run's summary, and a seeded sample of queries with their
positives and negatives, so it can be mailed or attached to a CI job as one file.
"""

from __future__ import annotations

import base64
import html
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardneg.artifacts import (
    CANDIDATES_FILE,
    KIND_INDEX,
    KIND_LOOP,
    KIND_MINE,
    RUN_QUERIES_FILE,
    artifact_kind,
    read_manifest,
    resolve_ref,
)
from hardneg.errors import ArtifactError, ConfigError
from hardneg.readers import DocTextLookup, read_table
from hardneg.writes import atomic_dir, writing

REPORT_FILE = "report.html"
TEXT_CHARS = 300


@dataclass
class ReportResult:
    path: Path
    files: list[str]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def relative_scores(run: Path) -> tuple[list[float], list[float], list[float]]:
    """Scores minus each query's lowest positive score: (the other positives, the selected negatives,
    the candidates the score and near-duplicate rules removed). A negative the margin fallback took
    back is selected, not removed."""
    queries = read_table(run / RUN_QUERIES_FILE, columns=["query_id", "positive_scores", "status"]).to_pylist()
    lowest = {q["query_id"]: min(q["positive_scores"]) for q in queries if q["status"] == "mined" and q["positive_scores"]}
    positives = [s - lowest[q["query_id"]] for q in queries if q["query_id"] in lowest for s in q["positive_scores"]]
    cands = read_table(run / CANDIDATES_FILE, columns=["query_id", "score", "selected", "filter"]).to_pylist()
    negatives = [c["score"] - lowest[c["query_id"]] for c in cands if c["selected"] and c["query_id"] in lowest]
    removed = [c["score"] - lowest[c["query_id"]] for c in cands
               if c["filter"] and not c["selected"] and c["filter"] not in ("positive", "duplicate") and c["query_id"] in lowest]
    return positives, negatives, removed


def plot_scores(run: Path, dest: Path) -> None:
    """Each candidate's score minus its query's lowest positive score (0: as close as the positive).

    Raw cosines pooled across queries mislead: a relative margin then seems to remove *easy*
    negatives, because queries with high positive scores also have high negative scores. Relative to
    each query's own positive, a margin visibly removes what is too close to it."""
    plt = _pyplot()
    positives, negatives, removed = relative_scores(run)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    lo = min(positives + negatives + removed, default=-1.0)
    hi = max(positives + negatives + removed, default=1.0)
    bins = [lo + (hi - lo) * i / 40 for i in range(41)] if hi > lo else 10
    for values, name, color in (
        (negatives, f"selected negatives ({len(negatives):,})", "tab:blue"),
        (removed, f"removed by score/near-dup rules ({len(removed):,})", "tab:gray"),
        (positives, f"other positives ({len(positives):,})", "tab:orange"),
    ):
        if values:
            ax.hist(values, bins=bins, alpha=0.55, density=True, label=name, color=color)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("score minus the query's lowest positive score")
    ax.set_ylabel("density")
    ax.set_title("Scores relative to each query's positive")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)


def plot_ranks(manifest: dict[str, Any], dest: Path) -> None:
    plt = _pyplot()
    hist = manifest["stats"]["rank_histogram"]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    ax.bar([f"{b['from']}-{b['to'] - 1}" for b in hist], [b["count"] for b in hist], color="tab:blue")
    lo, hi = manifest["stats"]["window"]
    ax.set_title(f"Ranks of the selected negatives (window [{lo}, {hi}))")
    ax.set_xlabel("rank (0-based, positives counted)")
    ax.set_ylabel("negatives")
    ax.tick_params(axis="x", labelsize=7, rotation=45)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)


def plot_filters(manifest: dict[str, Any], dest: Path) -> None:
    plt = _pyplot()
    from hardneg.filters import FILTER_ORDER

    stats = manifest["stats"]
    removed = [n for n in FILTER_ORDER if n in stats["removed"]]  # the order they are applied in
    names = removed + ["eligible", "selected"]
    values = [stats["removed"][n] for n in removed] + [stats["eligible"], stats["selected"]]
    colors = ["tab:red"] * len(stats["removed"]) + ["tab:green", "tab:blue"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2), dpi=110)
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set_title(f"What happened to the {stats['candidates']:,} candidates in the window")
    if max(values, default=0) > 50 * max(1, min((v for v in values if v), default=1)):
        ax.set_xscale("log")  # counts span orders of magnitude: small filters stay visible
        ax.set_xlabel("candidates (log scale)")
    else:
        ax.set_xlabel("candidates")
    ax.margins(x=0.15)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)


def plot_rounds(rounds: list[dict[str, Any]], dest: Path) -> None:
    plt = _pyplot()
    ks = [r["round"] for r in rounds]
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    names = sorted({n for r in rounds if r.get("dev") for n in r["dev"]["metrics"]})
    for name in names:
        xs = [r["round"] for r in rounds if r.get("dev")]
        ys = [r["dev"]["metrics"][name] for r in rounds if r.get("dev")]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xticks(ks)
    ax.set_xlabel("round")
    ax.set_title("Dev metrics per round" if names else "No dev split evaluated")
    if names:
        ax.legend(fontsize=8)
    overlap = [(r["round"], r["overlap_with_previous"]) for r in rounds if r.get("overlap_with_previous") is not None]
    ax2.bar([k for k, _ in overlap], [v for _, v in overlap], color="tab:purple")
    ax2.set_xticks(ks)
    ax2.set_ylim(0, 1.05)
    ax2.set_xlabel("round")
    ax2.set_title("Negatives kept from the previous round")
    # A score is not a share: the median negative score gets its own axes.
    medians = [(r["round"], r["negative_scores"].get("p50")) for r in rounds if r.get("negative_scores")]
    ax3.plot([k for k, _ in medians], [v for _, v in medians], marker="s", color="tab:blue")
    ax3.set_xticks(ks)
    ax3.set_xlabel("round")
    ax3.set_title("Median selected-negative score")
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)


def _sample_queries(run: Path, manifest: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    from hardneg.export import read_run
    from hardneg.search import load_doc_ids

    mined = read_run(run)
    queries, emb_path = mined.queries, mined.emb_path
    chosen = random.Random(seed).sample(queries, min(n, len(queries)))
    chosen.sort(key=lambda q: q.query_id)
    doc_ids, _ = load_doc_ids(resolve_ref(run, manifest, "index", KIND_INDEX, "re-run `hardneg mine`"))
    label_of = {d: i for i, d in enumerate(doc_ids)}
    lookup = DocTextLookup(emb_path)
    cands = read_table(run / CANDIDATES_FILE, columns=["query_id", "doc_id", "rank", "score", "selected"])
    where = {(q, d): (r, s) for q, d, r, s, sel in zip(*(cands[c].to_pylist() for c in ("query_id", "doc_id", "rank", "score", "selected"))) if sel}
    out = []
    for q in chosen:
        pos_text = lookup.get([label_of[d] for d in q.positives if d in label_of])
        neg_text = lookup.get([label_of[d] for d in q.negatives])
        out.append(
            {
                "query_id": q.query_id,
                "query": q.text,
                "positives": list(zip(q.positives, q.positive_scores or [None] * len(q.positives), pos_text)),  # type: ignore[list-item]
                "negatives": [(d, *where.get((q.query_id, d), (None, None)), t) for d, t in zip(q.negatives, neg_text)],
            }
        )
    return out


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return html.escape(text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "...")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _stats_table(manifest: dict[str, Any]) -> str:
    from hardneg.filters import FILTER_ORDER

    s = manifest["stats"]
    rows = [
        ("model", manifest["model"]["name"]),
        ("window", f"[{s['window'][0]}, {s['window'][1]})"),
        ("queries mined", f"{s['queries_mined']:,} of {s['queries']:,}"),
        ("candidates in window", f"{s['candidates']:,}"),
        *[(f"removed: {k}", f"{s['removed'][k]:,}") for k in FILTER_ORDER if k in s["removed"]],
        ("eligible", f"{s['eligible']:,}"),
        ("selected negatives", f"{s['selected']:,}"),
        ("queries short of negatives", f"{s['queries_short']:,}"),
        ("sampling", str(manifest["config"]["sampling"])),
        ("positive score median", str(s["positive_scores"].get("p50", "-"))),
        ("negative score median", str(s["negative_scores"].get("p50", "-"))),
    ]
    labels = s.get("labels") or {}
    if labels:  # a run mined with human judgments (--labels) or with qrels scored 0
        if "judgments" in labels:
            rows += [("judgments", f"{labels['judgments']:,}"),
                     ("judgments: positives added", f"{labels.get('positives_added', 0):,}")]
        if "qrels_not_relevant" in labels:
            rows.append(("qrels: judged not relevant (confirmed negatives)", f"{labels['qrels_not_relevant']:,}"))
        rows.append(("judgments: confirmed negatives in window / selected",
                     f"{labels.get('confirmed_in_window', 0):,} / {labels.get('confirmed_selected', 0):,}"))
        if "judgments" in labels:
            rows.append(("judgments not matching this run", f"{labels.get('unmatched', 0):,}"))
    if s.get("score_gaps"):
        rows.append(("gap: lowest positive - negative, median", str(s["score_gaps"].get("p50", "-"))))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _cell(value: Any, spec: str = "") -> str:
    """A manifest value for HTML: numbers formatted with ``spec``, anything else escaped as text
    (a manifest is a file anyone can edit; nothing from it reaches the page unescaped)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and spec:
        return html.escape(format(value, spec))
    return html.escape("-" if value is None else str(value))


def _rounds_table(rounds: list[dict[str, Any]]) -> str:
    names = sorted({str(n) for r in rounds if isinstance(r.get("dev"), dict) for n in r["dev"].get("metrics", {})})
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = ""
    for r in rounds:
        dev = r.get("dev") if isinstance(r.get("dev"), dict) else None
        metrics = "".join(f"<td>{_cell(dev.get('metrics', {}).get(n), '.4f')}</td>" if dev else "<td>-</td>" for n in names)
        overlap = r.get("overlap_with_previous")
        train: dict[str, Any] = r["train"] if isinstance(r.get("train"), dict) else {}
        scores: dict[str, Any] = r["negative_scores"] if isinstance(r.get("negative_scores"), dict) else {}
        body += (
            f"<tr><td>{_cell(r.get('round'))}</td>{metrics}<td>{_cell(r.get('negatives'), ',')}</td>"
            f"<td>{_cell(overlap, '.1%')}</td><td>{_cell(scores.get('p50'))}</td>"
            f"<td>{_cell(train.get('training_loss'), '.4f')}</td><td>{_cell(r.get('seconds'), '.0f')}</td></tr>"
        )
    return (
        f"<table><tr><th>round</th>{head}<th>negatives</th><th>kept from previous</th>"
        f"<th>median negative score</th><th>train loss</th><th>seconds</th></tr>{body}</table>"
    )


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
table.kv th{background:#f5f5f5}figure{margin:1em 0}img{max-width:100%}figcaption{color:#666;font-size:90%}
.q{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}.pos{color:#a35200}.neg{color:#1f4e9a}
small{color:#666}"""


def report(path: str | Path, out: str | Path, *, sample: int = 10, seed: int = 0) -> ReportResult:
    """Write ``out/report.html`` and the PNG plots for a mining run or a loop directory."""
    from hardneg._checks import INT64_MAX

    if not 0 <= sample <= INT64_MAX:
        raise ConfigError(f"sample must be >= 0 (queries to show), got {sample}")
    if not 0 <= seed <= INT64_MAX:
        raise ConfigError(f"seed must be in [0, 2^63), got {seed}")
    path, out = Path(path), Path(out)
    with writing(out, [path]) as out:
        kind = artifact_kind(path)
        rounds: list[dict[str, Any]] = []
        title = f"hardneg report: {path}"
        if kind == KIND_LOOP:
            loop = read_manifest(path, KIND_LOOP)
            rounds = loop["rounds"]
            if not rounds:
                raise ArtifactError(f"{path}: the loop has no finished round yet")
            run = path / "rounds" / str(rounds[-1]["round"]) / "run"
        elif kind == KIND_MINE:
            run = path
        else:
            raise ArtifactError(f"{path}: not a mining run or a loop (found {kind or 'no hardneg manifest'})")
        manifest = read_manifest(run, KIND_MINE)
        if out.exists() and not (out / REPORT_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
            raise ArtifactError(f"{out}: exists and is not a hardneg report; choose another --out")
        with atomic_dir(out) as tmp:
            plots = [("scores.png", "Scores relative to each query's lowest positive: selected negatives, removed candidates, other positives", lambda d: plot_scores(run, d)),
                     ("ranks.png", "Ranks of the selected negatives", lambda d: plot_ranks(manifest, d)),
                     ("filters.png", "Candidates removed per filter", lambda d: plot_filters(manifest, d))]
            if rounds:
                plots.insert(0, ("rounds.png", "Per-round dev metrics and negative churn", lambda d: plot_rounds(rounds, d)))
            for name, _, draw in plots:
                draw(tmp / name)
            parts = [f"<h1>{html.escape(title)}</h1>"]
            if rounds:
                best = loop.get("best_round")
                parts.append(f"<h2>Loop: {len(rounds)} round(s), best round {_cell(best)}, stopped early: {_cell(loop.get('stopped_early'))}</h2>")
                parts.append(_rounds_table(rounds))
                parts.append(f"<p>Plots below are for the last round's mining run: <code>{html.escape(str(run))}</code></p>")
            parts.append("<h2>Mining run</h2>" + _stats_table(manifest))
            parts += [_img(tmp / name, alt) for name, alt, _ in plots]
            parts.append(f"<h2>Sample of {sample} queries (seed {seed})</h2>")
            for q in _sample_queries(run, manifest, sample, seed):
                items = [f"<div class='q'><b>{html.escape(q['query_id'])}</b>: {_clip(q['query'])}<ul>"]
                for did, score, text in q["positives"]:
                    sc = "" if score is None else f" score {score:.3f}"
                    items.append(f"<li class='pos'>positive <small>{html.escape(did)}{sc}</small>: {_clip(text)}</li>")
                for did, rank, score, text in q["negatives"]:
                    items.append(f"<li class='neg'>negative <small>{html.escape(did)} rank {rank} score {score:.3f}</small>: {_clip(text)}</li>")
                parts.append("".join(items) + "</ul></div>")
            page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
            (tmp / REPORT_FILE).write_text(page, encoding="utf-8")
            files = [REPORT_FILE] + [name for name, _, _ in plots]
        return ReportResult(out, files)
