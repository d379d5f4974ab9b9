"""One writer per artifact, and writes that never destroy what hardneg did not write.

Concurrency is tested with real processes ordered by pipes (a holder that takes the lock, says so,
then waits for a line on stdin), never by sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.artifacts import KIND_EXPORT, artifact_kind, write_manifest
from hardneg.cli import app
from hardneg.errors import ArtifactError
from hardneg.writes import atomic_dir, prepare_partial, writing

runner = CliRunner()

HOLDER = textwrap.dedent(
    """
    import sys
    from hardneg.writes import writing
    with writing(sys.argv[1], wait=sys.argv[2] == "wait", log=lambda m: print("LOG " + m, flush=True)):
        print("HELD", flush=True)
        sys.stdin.readline()
    print("RELEASED", flush=True)
    """
)


def _holder(out: Path, wait: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), "wait" if wait else "fail"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _mined(tmp_path: Path, tiny_beir: Path) -> Path:
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "10",
                                 "--num-negatives", "2", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def test_a_second_writer_is_refused_naming_the_holder_and_the_artifact_is_untouched(tmp_path, tiny_beir):
    run = _mined(tmp_path, tiny_beir)
    out = tmp_path / "export"
    holder = _holder(out)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", str(out)])
        assert result.exit_code == 1
        assert f"PID {holder.pid}" in result.output and "another hardneg process" in result.output
        assert not out.exists()  # the refused writer wrote nothing
        mined = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--out", str(out)])
        assert mined.exit_code == 1 and f"PID {holder.pid}" in mined.output
        assert not (tmp_path / "export.partial").exists()
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "export.lock").exists()  # released locks leave nothing behind


def test_the_lock_of_a_killed_writer_is_taken_over(tmp_path, tiny_beir):
    run = _mined(tmp_path, tiny_beir)
    out = tmp_path / "export"
    holder = _holder(out)
    assert holder.stdout.readline().strip() == "HELD"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert (tmp_path / "export.lock").exists()  # SIGKILL leaves the file, but the kernel dropped the lock
    result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert artifact_kind(out) == KIND_EXPORT and not (tmp_path / "export.lock").exists()


def test_a_shared_cache_entry_is_waited_for_then_used(tmp_path):
    out = tmp_path / "cache-entry"
    first = _holder(out)
    assert first.stdout.readline().strip() == "HELD"
    second = _holder(out, wait=True)
    try:
        line = second.stdout.readline()
        assert line.startswith("LOG waiting for PID") and str(first.pid) in line
        first.communicate("\n", timeout=60)
        assert second.stdout.readline().strip() == "HELD"  # only after the first released it
    finally:
        out_text, _ = second.communicate("\n", timeout=60)
    assert second.returncode == 0 and "RELEASED" in out_text


def test_writing_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    out = tmp_path / "a"
    with writing(out) as real, writing(out):
        assert real == out
        probe = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom hardneg.writes import writing\nwith writing(sys.argv[1]): pass", str(out)],
            capture_output=True, text=True,
        )
        assert probe.returncode == 1 and "LockedError" in probe.stderr and f"PID {os.getpid()}" in probe.stderr
    with writing(out):  # released: free again
        pass
    assert not (tmp_path / "a.lock").exists()


# --------------------------------------------------------------------------- what --force may replace


def test_force_never_replaces_the_input_or_a_foreign_directory(tmp_path, tiny_beir):
    before = sorted(p.name for p in tiny_beir.rglob("*"))
    for out in (tiny_beir, tiny_beir / "corpus.jsonl", tiny_beir / "qrels"):
        result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--out", str(out), "--force"])
        assert result.exit_code == 1, (out, result.output)
        assert "never deletes what it did not write" in result.output or "input" in result.output
        result = runner.invoke(app, ["embed", str(tiny_beir), "--model", "hashing", "--out", str(out), "--force"])
        assert result.exit_code == 1, (out, result.output)
    assert sorted(p.name for p in tiny_beir.rglob("*")) == before
    # A foreign folder keeps its files and the message names some of them.
    foreign = tmp_path / "mine-here"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--out", str(foreign), "--force"])
    assert result.exit_code == 1 and "notes.txt" in result.output
    assert (foreign / "notes.txt").read_text() == "mine"


def test_force_never_replaces_an_artifact_that_is_this_stages_input(tmp_path, tiny_beir):
    run = _mined(tmp_path, tiny_beir)
    manifest = json.loads((run / "manifest.json").read_text())
    index = Path(manifest["index"]["path"])
    result = runner.invoke(app, ["mine", str(index), "--out", str(index), "--force"])
    assert result.exit_code == 1 and "input" in result.output
    assert artifact_kind(index) == "index"
    result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", str(run), "--force"])
    assert result.exit_code == 1 and artifact_kind(run) == "mine-run"
    # ... nor a directory that holds the input
    result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", str(tmp_path), "--force"])
    assert result.exit_code == 1 and (run / "manifest.json").is_file()


def test_force_never_replaces_the_current_directory_or_a_parent(tmp_path, tiny_beir, monkeypatch):
    run = _mined(tmp_path, tiny_beir)
    work = tmp_path / "work" / "inner"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("x")
    # even when the current directory is an empty folder or a hardneg artifact
    monkeypatch.chdir(work)
    for out in (".", "..", "../.."):
        result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", out, "--force"])
        assert result.exit_code == 1 and "current directory" in result.output, (out, result.output)
    assert (work / "keep.txt").read_text() == "x"


def test_a_symlinked_out_is_written_through_and_leaves_no_litter(tmp_path, tiny_beir):
    run = _mined(tmp_path, tiny_beir)
    target = tmp_path / "real-export"
    link = tmp_path / "export-link"
    link.symlink_to(target)
    for _ in range(2):
        result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", str(link)])
        assert result.exit_code == 0, result.output
    assert link.is_symlink() and artifact_kind(target) == KIND_EXPORT
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("export-link", "real-export"))) == [
        "export-link", "real-export"]


def test_a_user_folder_named_like_the_work_directory_is_never_deleted(tmp_path, tiny_beir):
    partial = tmp_path / "run.partial"
    partial.mkdir()
    (partial / "thesis.tex").write_text("years of work")
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "thesis.tex" in result.output and "not created by hardneg" in result.output
    assert (partial / "thesis.tex").read_text() == "years of work"
    with pytest.raises(ArtifactError):
        prepare_partial(partial, "fp", ["chunks"])
    # with --force too
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "run"), "--force"])
    assert result.exit_code == 1 and (partial / "thesis.tex").exists()


# --------------------------------------------------------------------------- commits and litter

COMMIT_UNDER_SIGTERM = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from hardneg import artifacts, writes
    out = Path(sys.argv[1])
    real_rename = Path.rename
    def rename(self, target):
        result = real_rename(self, target)
        if ".old-" in str(target):  # between the two renames of the commit
            os.kill(os.getpid(), signal.SIGTERM)
        return result
    Path.rename = rename
    with writes.atomic_dir(out) as tmp:
        (tmp / "data.txt").write_text("new")
        artifacts.write_manifest(tmp, "export")
    print("UNREACHABLE")
    """
)


def test_sigterm_between_the_two_renames_of_a_commit_leaves_the_new_artifact(tmp_path):
    out = tmp_path / "art"
    with atomic_dir(out) as tmp:
        (tmp / "data.txt").write_text("old")
        write_manifest(tmp, KIND_EXPORT)
    proc = subprocess.run([sys.executable, "-c", COMMIT_UNDER_SIGTERM, str(out)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGTERM  # the signal was delivered, after the commit
    assert "UNREACHABLE" not in proc.stdout
    assert (out / "data.txt").read_text() == "new" and artifact_kind(out) == KIND_EXPORT


def test_temporaries_of_dead_writers_are_cleaned_and_an_interrupted_commit_is_put_back(tmp_path):
    out = tmp_path / "art"
    with atomic_dir(out) as tmp:
        (tmp / "data.txt").write_text("old")
        write_manifest(tmp, KIND_EXPORT)
    # What SIGKILL leaves: a half-written temporary, and an artifact moved aside between the renames.
    (tmp_path / "art.tmp-0123abcd").mkdir()
    (tmp_path / "art.tmp-0123abcd" / "half.parquet").write_bytes(b"PAR1")
    out.rename(tmp_path / "art.old-89abcdef")
    (tmp_path / "art.tmp-zzzzzzzz-not-ours").mkdir()
    with writing(out):
        assert (out / "data.txt").read_text() == "old"  # put back before anyone looks at it
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "art.tmp-0123abcd" not in names and "art.old-89abcdef" not in names
    assert "art.tmp-zzzzzzzz-not-ours" in names  # not a name hardneg writes: left alone


def test_a_tree_of_artifacts_moved_together_still_resolves_and_a_missing_input_is_named(tmp_path, tiny_beir):
    tree = tmp_path / "tree"
    tree.mkdir()
    for args in (["embed", str(tiny_beir), "--model", "hashing", "--out", str(tree / "emb")],
                 ["index", str(tree / "emb"), "--out", str(tree / "idx")],
                 ["mine", str(tree / "idx"), "--min-rank", "0", "--max-rank", "10", "--out", str(tree / "run")]):
        assert runner.invoke(app, [*args, "--quiet"]).exit_code == 0
    moved = tmp_path / "elsewhere" / "tree"
    moved.parent.mkdir()
    tree.rename(moved)
    for args in (["export", str(moved / "run"), "--format", "triplets", "--out", str(tmp_path / "e")],
                 ["select", str(moved / "run"), "--budget", "2", "--out", str(tmp_path / "s")],
                 ["mine", str(moved / "idx"), "--min-rank", "0", "--max-rank", "10", "--out", str(tmp_path / "run2")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    shutil.rmtree(moved / "emb")
    result = runner.invoke(app, ["export", str(moved / "run"), "--format", "triplets", "--out", str(tmp_path / "e2")])
    assert result.exit_code == 1 and "embeddings it was made from" in result.output and "is gone" in result.output


def test_cache_lists_and_prunes_least_recently_used_entries_but_never_a_busy_one(tmp_path, tiny_beir):
    home = tmp_path / "hardneg-home"
    assert runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "run"), "--quiet"]).exit_code == 0
    listed = runner.invoke(app, ["cache", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    kinds = sorted(e["kind"] for e in json.loads(listed.stdout)["entries"])
    assert kinds == ["embeddings", "index"]
    index_entry = next(e["path"] for e in json.loads(listed.stdout)["entries"] if e["kind"] == "index")
    holder = _holder(Path(index_entry))
    try:
        assert holder.stdout.readline().strip() == "HELD"
        dry = runner.invoke(app, ["cache", "prune", "--max-size", "0", "--dry-run", "--json"])
        assert len(json.loads(dry.stdout)["removed"]) == 2 and (home / "embeddings").exists()
        pruned = runner.invoke(app, ["cache", "prune", "--max-size", "0", "--json"])
        result = json.loads(pruned.stdout)
        assert result["busy"] == [index_entry] and len(result["removed"]) == 1
        assert Path(index_entry).exists() and not any((home / "embeddings").iterdir())
    finally:
        holder.communicate("\n", timeout=60)
    assert runner.invoke(app, ["cache", "prune", "--older-than", "0s"]).exit_code == 0
    assert not Path(index_entry).exists()
    # The run still exports from its own files? No: its embeddings were in the cache, and the
    # error says so; mining again recomputes them.
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "triplets", "--out", str(tmp_path / "e")])
    assert result.exit_code == 1 and "is gone" in result.output
    assert runner.invoke(app, ["cache", "prune"]).exit_code == 2


@pytest.mark.parametrize("args, needle", [
    (["--max-size", "1e400G"], "size '1e400G'"), (["--max-size", "inf"], "size 'inf'"), (["--max-size", "-1G"], "size '-1G'"),
    (["--older-than", "nan"], "age 'nan': must be a finite number"), (["--older-than", "infd"], "must be a finite number"),
    (["--older-than", "-3d"], "must not be negative"), (["--older-than", "7x"], "expected a number with a unit"),
])
def test_cache_prune_refuses_sizes_and_ages_that_are_not_finite(tmp_path, args, needle):
    result = runner.invoke(app, ["cache", "prune", *args, "--dry-run", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and needle in result.stderr and "unexpected" not in result.output, result.output


def test_prepare_out_is_one_policy_for_what_may_be_at_out(tmp_path):
    from hardneg.artifacts import write_manifest
    from hardneg.errors import ArtifactError
    from hardneg.writes import prepare_out

    out = tmp_path / "out"
    assert prepare_out(out, "synthetic", "fp1", False, what="mining run") is None  # absent
    out.mkdir()
    assert prepare_out(out, "synthetic", "fp1", False, what="mining run") is None  # empty directory
    (out / "notes.txt").write_text("mine")
    for force in (False, True):  # foreign: never, even with --force
        with pytest.raises(ArtifactError, match="not a hardneg mining run"):
            prepare_out(out, "synthetic", "fp1", force, what="mining run")
    (out / "notes.txt").unlink()
    write_manifest(out, "synthetic", fingerprint="fp1", identity={"model": "a"})
    assert prepare_out(out, "synthetic", "fp1", False, what="mining run")["fingerprint"] == "fp1"  # up to date: reuse
    assert prepare_out(out, "synthetic", "fp1", True, what="mining run") is None  # --force rebuilds
    assert prepare_out(out, "synthetic", "fp2", False, what="mining run") is None  # replace
    with pytest.raises(ArtifactError, match="different data or settings"):
        prepare_out(out, "synthetic", "fp2", False, what="loop", changed="refuse")
    with pytest.raises(ArtifactError, match=r"model: 'a' there, 'b' now"):
        prepare_out(out, "synthetic", "fp2", False, what="run", changed="explain", identity={"model": "b"})
    with pytest.raises(ArtifactError, match="holds a 'synthetic' artifact, not a hardneg export"):
        prepare_out(out, "export", None, False, what="export")
    assert prepare_out(out, "export", None, True, what="export") is None
