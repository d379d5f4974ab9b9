"""Human-readable summaries (rich tables on stdout) of what each stage did."""

from __future__ import annotations

import shlex
from typing import Any

from rich.console import Console
from rich.table import Table


def print_table(console: Console, table: Table) -> None:
    """A table whose title is a line of its own: rich wraps a title to the table's width, which
    broke long paths and model names in two (`runs/.../teacher-bienco` / `der`) where a reader
    copies them from."""
    title, table.title = table.title, None
    if title:
        console.print(str(title), style="table.title", soft_wrap=True, markup=False, highlight=False)
    console.print(table)


def _pct(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})" if whole else f"{part:,}"


def _quantile_row(values: dict[str, float]) -> list[str]:
    return [f"{values.get(k, float('nan')):.3f}" if values else "-" for k in ("p0", "p25", "p50", "p75", "p100", "mean")]


def score_source(manifest: dict[str, Any]) -> str:
    """Where the scores a run selected by come from, in words (the mine summary's header). Exports
    describe their own scores (the teacher's whenever the run has one): ExportStats.score_source."""
    model, config = manifest.get("model") or {}, manifest.get("config") or {}
    teacher = (manifest.get("cross_encoder") or {}).get("name") or config.get("cross_encoder")
    own = f"embedding {model.get('metric', 'cosine')} of {model.get('name', '?')}"
    if not teacher:
        return f"{own}, no --cross-encoder"
    if config.get("scores_from") == "teacher":
        return f"teacher {teacher} (--scores-from teacher); {own} for retrieval"
    return f"{own}; teacher {teacher} scored the candidates too (teacher_score)"


def mine_header(manifest: dict[str, Any], elapsed: float | None, reused: bool) -> str:
    config, model = manifest.get("config") or {}, manifest.get("model") or {}
    seeded = config.get("sampling") != "top" or config.get("fallback_min_rank") is not None
    sampling = config.get("sampling", "?") + (f" (seed {config['seed']})" if seeded else "")
    margins = [f"{name} {config[key]:g}" for key, name in (("relative_margin", "relative margin"), ("absolute_margin", "absolute margin"))
               if config.get(key) is not None]
    if margins and config.get("fallback_min_rank") is not None:
        margins.append(f"fallback from rank {config['fallback_min_rank']}")
    when = "up to date, reused" if reused else (f"{elapsed:.1f} s" if elapsed is not None else "")
    parts = [f"model {model.get('name', '?')}", f"retriever {config.get('retriever', 'dense')}", f"sampling {sampling}",
             ", ".join(margins), f"scores: {score_source(manifest)}", when]
    return " · ".join(p for p in parts if p)


def render_mine(console: Console, stats: dict[str, Any], path: str, manifest: dict[str, Any] | None = None,
                elapsed: float | None = None, reused: bool = False) -> None:
    lo, hi = stats["window"]
    if manifest:
        console.print(mine_header(manifest, elapsed, reused), markup=False, highlight=False, soft_wrap=True)
    table = Table(title=f"Mining summary: ranks [{lo}, {hi}), {stats['num_negatives']} negatives per query", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("queries", f"{stats['queries']:,}")
    table.add_row("queries mined", f"{stats['queries_mined']:,}")
    for status, count in stats["queries_skipped"].items():
        table.add_row(f"queries not mined: {status}", f"{count:,}")
    table.add_row("candidates in window", f"{stats['candidates']:,}")
    from hardneg.filters import FILTER_ORDER  # here: `hardneg --help` imports no numpy

    order = {name: i for i, name in enumerate(FILTER_ORDER)}  # a manifest read back may hold them sorted by name
    for name, count in sorted(stats["removed"].items(), key=lambda item: order.get(item[0], len(order))):
        table.add_row(f"removed: {name}", _pct(count, stats["candidates"]))
    table.add_row("eligible", f"{stats['eligible']:,}")
    table.add_row("selected negatives", f"{stats['selected']:,}")
    npq = stats["negatives_per_query"]
    if npq:
        table.add_row("negatives per query (min / median / max)", f"{npq['min']} / {npq['median']:g} / {npq['max']}")
    if stats.get("fallback_queries"):
        table.add_row("queries filled by --fallback-min-rank (negatives)",
                      f"{_pct(stats['fallback_queries'], stats['queries_mined'])} ({stats['fallback_selected']:,})")
    if stats.get("same_group_selected"):
        table.add_row("same-group negatives", _pct(stats["same_group_selected"], stats["selected"]))
    table.add_row("queries short of negatives", _pct(stats["queries_short"], stats["queries_mined"]))
    table.add_row(f"positives ranked < {hi}", _pct(stats["positives_in_top"], stats["positives"]))
    labels = stats.get("labels") or {}
    if labels:
        if "positives_added" in labels:  # --labels
            table.add_row("judgments: positives added", f"{labels['positives_added']:,}")
        if "qrels_not_relevant" in labels:
            table.add_row("qrels: judged not relevant (confirmed negatives)", f"{labels['qrels_not_relevant']:,}")
        table.add_row("judgments: confirmed negatives in window / selected", f"{labels.get('confirmed_in_window', 0):,} / {labels.get('confirmed_selected', 0):,}")
        if labels.get("unmatched"):
            table.add_row("judgments not matching this run's queries/corpus", f"{labels['unmatched']:,}")
    print_table(console, table)

    scores = Table(title="Scores (cosine)", title_justify="left")
    scores.add_column("")
    for name in ("min", "p25", "median", "p75", "max", "mean"):
        scores.add_column(name, justify="right")
    scores.add_row("positives", *_quantile_row(stats["positive_scores"]))
    if stats.get("eligible_scores"):
        scores.add_row("eligible candidates (sampled from)", *_quantile_row(stats["eligible_scores"]))
    scores.add_row("selected negatives", *_quantile_row(stats["negative_scores"]))
    if stats.get("score_gaps"):
        # Near 0 or below: negatives as close as the positive (hard, or false negatives); large: easy.
        scores.add_row("gap: lowest positive - negative", *_quantile_row(stats["score_gaps"]))
    print_table(console, scores)

    hist = Table(title="Ranks of selected negatives", title_justify="left")
    hist.add_column("ranks")
    hist.add_column("count", justify="right")
    hist.add_column("")
    peak = max((b["count"] for b in stats["rank_histogram"]), default=0) or 1
    for bucket in stats["rank_histogram"]:
        hist.add_row(f"[{bucket['from']}, {bucket['to']})", f"{bucket['count']:,}", "#" * round(30 * bucket["count"] / peak))
    print_table(console, hist)
    for hint in stats["hints"]:
        console.print(f"hint: {hint}", markup=False, highlight=False)
    console.print(f"mining run: {path}", markup=False, highlight=False)
    if stats["selected"]:
        target = shlex.quote(path.rstrip("/") + "-colbert")
        console.print(f"next: hardneg export {shlex.quote(path)} --format colbert --out {target}   "
                      "(or --format sentence-transformers, pylate-kd, ...; hardneg report " + shlex.quote(path) + ")",
                      markup=False, highlight=False, soft_wrap=True)


def render_embed(console: Console, manifest: dict[str, Any], path: str, reused: bool) -> None:
    counts, model = manifest["counts"], manifest["model"]
    state = "up to date (reused)" if reused else f"encoded {counts['encoded']:,}, reused {counts['reused']:,}"
    console.print(
        f"embeddings: {path}\n  model {model['name']} (dim {model['dim']}, max length {model['max_length']}), "
        f"{counts['docs']:,} documents, {counts['queries']:,} queries; {state}",
        markup=False,
        highlight=False,
    )


def render_index(console: Console, manifest: dict[str, Any], path: str, reused: bool) -> None:
    recall = manifest.get("recall")
    extra = f", recall@{recall['k']} {recall['recall']:.4f} vs exact (query_ef {recall['query_ef']})" if recall else ""
    console.print(
        f"index: {path}\n  {manifest['backend']} over {manifest['counts']['docs']:,} documents{extra}"
        + (" (reused)" if reused else ""),
        markup=False,
        highlight=False,
    )


def nearly_uniform_targets(share: float | None, uniform: float | None) -> bool:
    """Whether a softmax over the exported scores gives the positive less than 1.5x the uniform
    share: targets a distillation trainer that does not normalise learns next to nothing from (raw
    cosines: 0.263 against 0.200 on SciFact). A ColBERT teacher's MaxSim sums are spread wider and
    are not flagged."""
    return share is not None and uniform is not None and share < 1.5 * uniform


_TRANSFORM_WORDS = {"none": "raw", "minmax": "min-max scaled", "zscore": "z-scored"}


def render_export(console: Console, stats: dict[str, Any], path: str | None) -> None:
    lines = [f"export ({stats['format']}, nway {stats['nway']}): {stats['rows']:,} rows for {stats['queries']:,} queries"]
    if stats["queries_without_negatives"]:
        lines.append(f"  {stats['queries_without_negatives']} queries had no negatives and gave no rows")
    if stats["rows_dropped_short"]:
        lines.append(f"  {stats['rows_dropped_short']} rows dropped: fewer than nway - 1 negatives")
    if stats.get("score_source"):
        lines.append(f"  scores: {stats['score_source']}")
    if stats.get("positive_softmax_share") is not None:
        lines.append(
            f"  teacher targets ({_TRANSFORM_WORDS.get(stats.get('score_transform', 'none'), '?')} scores): the positive gets {stats['positive_softmax_share']:.1%} "
            f"of softmax(scores) on average (uniform: {stats['uniform_share']:.1%})"
            + ("; nearly uniform targets teach little: consider --score-transform minmax"
               if stats.get("score_transform") == "none" and nearly_uniform_targets(stats["positive_softmax_share"], stats.get("uniform_share"))
               else "")
        )
    for name in stats["files"]:
        lines.append(f"  {path}/{name}")
    console.print("\n".join(lines), markup=False, highlight=False)


def render_loop(console: Console, rounds: list[dict[str, Any]], best: int | None, stopped_early: bool, path: str,
                final_student: dict[str, Any] | None = None) -> None:
    names = sorted({n for r in rounds if r.get("dev") for n in r["dev"]["metrics"]})
    students = any((r.get("student") or {}).get("dev") for r in rounds)
    student_cols = [f"ColBERT {n}" for n in names] if students else []
    table = Table(title=f"Loop: {len(rounds)} round(s)" + (f", best round {best}" if best is not None else ""), title_justify="left")
    for col in ["round", *names, *student_cols, "negatives", "kept from prev.", "neg. score p25/p50/p75", "train loss", "seconds"]:
        table.add_column(col, justify="right")
    for r in rounds:
        metrics = [f"{r['dev']['metrics'][n]:.4f}" if r.get("dev") else "-" for n in names]
        if students:
            sdev = (r.get("student") or {}).get("dev")
            metrics += [f"{sdev['metrics'][n]:.4f}" if sdev else "-" for n in names]
        q = r.get("negative_scores") or {}
        quant = f"{q.get('p25', 0):.3f}/{q.get('p50', 0):.3f}/{q.get('p75', 0):.3f}" if q else "-"
        overlap = "-" if r.get("overlap_with_previous") is None else f"{r['overlap_with_previous']:.1%}"
        loss = "-" if not r.get("train") else f"{r['train']['training_loss']:.4f}"
        table.add_row(str(r["round"]), *metrics, f"{r['negatives']:,}", overlap, quant, loss, f"{r['seconds']:.0f}")
    print_table(console, table)
    if stopped_early:
        console.print("stopped early: the dev metric stopped improving", markup=False, highlight=False)
    if final_student:
        dev = final_student.get("dev")
        scored = ", ".join(f"{n} {v:.4f}" for n, v in dev["metrics"].items()) if dev else "no dev split"
        console.print(f"ColBERT student (round {final_student['round']}'s negatives): {final_student['path']} ({scored})",
                      markup=False, highlight=False)
    console.print(f"loop: {path}", markup=False, highlight=False)


def render_train(console: Console, manifest: dict[str, Any], path: str, reused: bool) -> None:
    t = manifest["training"]
    console.print(
        f"checkpoint: {path}{' (up to date, reused)' if reused else ''}\n"
        f"  {manifest.get('architecture', 'biencoder')} ({manifest.get('loss', '?')}) "
        f"from {manifest['base_model']['name']}; {t['rows']:,} rows, {t['steps']:,} steps, "
        f"training loss {t['training_loss']:.4f}"
        + (f" (chance level {t['chance_loss']:.4f})" if "chance_loss" in t else "")
        + f", {t['seconds']:.0f} s on {t['device']}",
        markup=False, highlight=False,
    )


def render_eval(console: Console, result: Any, source: str) -> None:
    reranker = result.model.get("reranker")
    by = f", top {reranker['depth']} reranked by {reranker['name']}" if reranker else ""
    table = Table(title=f"{result.model['name']}{by} on {source} [{result.split}]: {result.queries:,} queries", title_justify="left")
    for name in result.metrics:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.4f}" for v in result.metrics.values()))
    print_table(console, table)
    if result.skipped:
        console.print(f"{result.skipped} queries without a relevant document were left out", markup=False, highlight=False)
    if getattr(result, "self_matches", 0):
        console.print(f"{result.self_matches} retrieved documents that are their query (its text, or its id and its text under a "
                      "title: the query itself, in the corpus) were left out of its ranking", markup=False, highlight=False)


def render_select(console: Console, manifest: dict[str, Any], path: str, strategy: str, run: str) -> None:
    counts = manifest["counts"]
    console.print(
        f"selected {counts['queries_chosen']} of {counts['queries_considered']} queries "
        f"({counts['candidates']} candidates to judge, strategy {strategy})\n"
        f"  {path}/to_label.jsonl\n  {path}/to_label.csv\n"
        "Fill each `label` with relevant / not_relevant / skip, then: "
        f"hardneg label import {path}/to_label.csv --run {run}",
        markup=False, highlight=False,
    )


def render_label_import(console: Console, s: Any, path: str) -> None:
    lines = [
        f"imported {s.relevant} relevant and {s.not_relevant} not-relevant judgments ({s.skipped} skipped, "
        f"{s.replaced} replaced earlier ones); {s.total_judgments} judgments in {path}"
    ]
    if s.invalid:
        lines.append(f"{s.invalid} invalid row(s) skipped:")
        lines += [f"  {p}" for p in s.problems]
    lines.append(f"next: hardneg mine <index or data> --labels {path} --out <new run>")
    console.print("\n".join(lines), markup=False, highlight=False)


def render_audit(console: Console, result: Any, model: str) -> None:
    table = Table(title=f"False negatives judged by {model} on {result.queries} queries", title_justify="left")
    for column in ("group", "judged", "judged relevant", "rate", "95% CI", "unjudged"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for g in result.groups:
        rate = "-" if g["false_negative_rate"] is None else f"{g['false_negative_rate']:.1%}"
        ci = "-" if g["ci95"] is None else f"[{g['ci95'][0]:.1%}, {g['ci95'][1]:.1%}]"
        table.add_row(g["group"], str(g["judged"]), str(g["judged_relevant"]), rate, ci, str(g["unjudged"]))
    print_table(console, table)
    console.print(f"{result.path}/audit.json  ({result.usage.get('requests', 0)} requests, {result.usage.get('cached', 0)} cached)",
                  markup=False, highlight=False)


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def render_cache(console: Console, entries: list[Any], root: str) -> None:
    import time

    table = Table(title=f"{root}: {len(entries)} entries, {size_text(sum(e.bytes for e in entries))}", title_justify="left")
    for column in ("entry", "kind", "size", "last used", "what"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        table.add_row(str(e.path), e.kind, size_text(e.bytes), time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used)), e.describes)
    print_table(console, table)


def render_prune(console: Console, removed: list[Any], busy: list[Any], root: str, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {len(removed)} entries ({size_text(sum(e.bytes for e in removed))}) from {root}"] + [f"  {e.path}" for e in removed]
    if busy:
        lines.append(f"kept {len(busy)} entries a running hardneg is writing: " + ", ".join(str(e.path) for e in busy))
    console.print("\n".join(lines), markup=False, highlight=False)


def render_synth(console: Console, result: Any) -> None:
    if result.plan:
        p = result.plan
        console.print(f"dry run: {p['requests']:,} LLM requests, ~{p['prompt_tokens_estimate']:,} prompt tokens, "
                      f"at most {p['completion_tokens_max']:,} completion tokens; nothing was sent", markup=False, highlight=False)
        return
    s = result.manifest["stats"]
    removed = ", ".join(f"{k} {v}" for k, v in s["removed"].items()) or "none"
    console.print(
        f"synthetic negatives: {result.path}{' (up to date, reused)' if result.reused else ''}\n"
        f"  {s['pairs']:,} (query, positive) pairs, {s['generated']:,} passages generated, {s['kept']:,} kept "
        f"(removed: {removed}; pairs without a usable answer: {s['pairs_without_answer']})\n"
        f"next: hardneg export RUN --format sentence-transformers --synthetic {result.path} --out DIR",
        markup=False, highlight=False,
    )
