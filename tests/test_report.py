"""`hardneg report`: the HTML opens, embeds every plot, and the PNGs are real images."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.artifacts import write_manifest
from hardneg.cli import app
from hardneg.errors import ArtifactError
from hardneg.report import report
from tests.test_label import planes  # noqa: F401  (fixture)

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.captions: list[str] = []
        self._in_caption = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_caption = tag == "figcaption"

    def handle_data(self, data):
        self.text.append(data)
        if self._in_caption:
            self.captions.append(data)
            self._in_caption = False


def _parse(path: Path) -> _Collect:
    parser = _Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_report_of_a_mining_run(planes, tmp_path):  # noqa: F811
    _, run = planes
    out = runner.invoke(app, ["report", str(run), "--sample", "3"])
    assert out.exit_code == 0, out.output
    dest = run.with_name("run-report")
    for name in ("scores.png", "ranks.png", "filters.png"):
        assert (dest / name).read_bytes()[:8] == PNG
    page = _parse(dest / "report.html")
    assert len(page.images) == 3
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    assert page.captions == [
        "Scores relative to each query's lowest positive: selected negatives, removed candidates, other positives",
        "Ranks of the selected negatives",
        "Candidates removed per filter",
    ]
    text = " ".join(page.text)
    assert "question" in text and "negative" in text and "selected negatives" in text


def test_report_of_a_loop_adds_the_rounds_plot(planes, tmp_path):  # noqa: F811
    _, run = planes
    loop = tmp_path / "loop"
    shutil.copytree(run, loop / "rounds" / "1" / "run")
    rounds = [
        {"round": k, "dev": {"metrics": {"ndcg@10": 0.5 + k / 10, "recall@100": 0.9}}, "negatives": 12,
         "overlap_with_previous": None if k == 0 else 0.4, "negative_scores": {"p50": 0.6}, "seconds": 3.0,
         "train": None if k == 0 else {"training_loss": 0.3}}
        for k in (0, 1)
    ]
    write_manifest(loop, "loop", rounds=rounds, best_round=1, stopped_early=False)
    result = report(loop, tmp_path / "loop-report")
    assert result.files == ["report.html", "rounds.png", "scores.png", "ranks.png", "filters.png"]
    page = _parse(tmp_path / "loop-report" / "report.html")
    assert len(page.images) == 4 and page.captions[0] == "Per-round dev metrics and negative churn"
    assert "0.6000" in " ".join(page.text)  # round 1's nDCG@10 in the rounds table


def test_report_refuses_what_it_cannot_read_or_must_not_overwrite(planes, tmp_path):  # noqa: F811
    _, run = planes
    with pytest.raises(ArtifactError, match="not a mining run or a loop"):
        report(tmp_path, tmp_path / "r")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(ArtifactError, match="not a hardneg report"):
        report(run, foreign)
    assert (foreign / "keep.txt").read_text() == "x"
