"""Examples shown under each command's help (click's \\b keeps each on its own line).

They are one walkthrough on the bundled sample, run from the repository root of a fresh clone:
each command's examples use only the sample, `examples/scifact-pairs.jsonl`, `configs/` and what an
earlier example wrote (`runs/`, `models/`; a comment line says which command made it when that
command is another one's). `tests/test_examples_run.py` executes them all, in this order, and
keeps each line within HELP_WIDTH - 4 characters (help is never narrower than HELP_WIDTH
when it is not written to a terminal, so piped help never wraps a command).
"""

HELP_WIDTH = 120
"""Help is rendered at least this wide when stdout is not a terminal (see `_console`)."""

EMBED_EXAMPLES = """Examples:

\b
  hardneg embed examples/scifact-sample --model minilm --out runs/emb
  hardneg embed examples/scifact-sample --split test --out runs/emb-test
  hardneg embed examples/scifact-pairs.jsonl --corpus examples/scifact-sample/corpus.jsonl --out runs/pairs-emb
"""

INDEX_EXAMPLES = """Examples:

\b
  hardneg index runs/emb --out runs/idx
  hardneg index runs/emb --exact --out runs/idx-exact
  hardneg index runs/emb --hnsw --storage e4m3 --m 16 --out runs/idx-e4m3
"""

MINE_EXAMPLES = """Examples:

\b
  hardneg mine examples/scifact-sample --model minilm --out runs/sf
  hardneg mine runs/idx --min-rank 20 --max-rank 200 --out runs/sf-wide
  hardneg mine runs/idx --config configs/nv-retriever.toml --out runs/sf-nv
  hardneg mine runs/idx --sampling simans --out runs/sf-simans
  hardneg mine runs/idx --retriever hybrid --out runs/sf-hybrid
  cat examples/scifact-pairs.jsonl | hardneg mine - --corpus examples/scifact-sample/corpus.jsonl --out runs/pairs
  # with models trained by `hardneg train` (see its examples):
  hardneg mine runs/idx --teacher models/sf-ce --scores-from teacher --absolute-margin 0 --max-rank 30 --out runs/dn
  hardneg mine runs/idx --teacher models/sf --kd-depth 8 --out runs/sf-kd
  # with judgments from `hardneg label import` (see its examples):
  hardneg mine runs/idx --labels runs/labels --out runs/sf-labelled
"""

EXPORT_EXAMPLES = """Examples:

\b
  hardneg export runs/sf --format colbert --out runs/sf-colbert
  hardneg export runs/sf --format colbert --nway 4 --out runs/sf-colbert-4
  hardneg export runs/sf --format sentence-transformers --out runs/sf-st
  hardneg export runs/sf --format triplets --out - | head -n 2
  hardneg export runs/sf --format msmarco-triples --out runs/sf-tsv
  hardneg export runs/sf --format flagembedding --out runs/sf-flag
  hardneg export runs/sf --format tevatron --out runs/sf-tevatron
  # from a run mined with --kd-depth (see mine's examples):
  hardneg export runs/sf-kd --format pylate-kd --out runs/sf-pylate
  hardneg export runs/sf-kd --format colbert --scores --out runs/sf-kd-colbert
"""

TRAIN_EXAMPLES = """Examples:

\b
  hardneg train runs/sf-st --model minilm --out models/sf
  hardneg train runs/sf-st --loss cached-mnrl --batch-size 64 --out models/sf-c
  hardneg train runs/sf-st --architecture colbert --out models/sf-colbert
  hardneg train runs/sf-st --architecture cross-encoder --out models/sf-ce
  # distillation from a --kd-depth run's pylate-kd export (see export's examples):
  hardneg train runs/sf-pylate --architecture colbert --loss distillation --batch-size 8 --out models/sf-kd
"""

EVAL_EXAMPLES = """Examples:

\b
  hardneg eval examples/scifact-sample --model minilm --split test
  hardneg eval examples/scifact-sample --model models/sf --split test --json
  hardneg eval examples/scifact-sample --model models/sf-colbert --split test
  hardneg eval examples/scifact-sample --architecture colbert --split test
"""

LOOP_EXAMPLES = """Examples:

\b
  hardneg loop examples/scifact-sample --rounds 2 --dev-split test --out runs/loop
  hardneg loop examples/scifact-sample --rounds 1 --labels runs/labels --out runs/loop-l
  hardneg loop examples/scifact-sample --rounds 1 --architecture colbert --out runs/loop-colbert
"""

SELECT_EXAMPLES = """Examples:

\b
  hardneg select runs/sf --budget 20 --out runs/select
  hardneg select runs/sf --budget 20 --strategy entropy --diversity 0.3 --out runs/select-e
"""

LABEL_EXAMPLES = """Examples:

\b
  # an annotator fills the label column of runs/select/to_label.csv, then:
  hardneg label import runs/select/to_label.csv --run runs/sf --into runs/labels
"""

REPORT_EXAMPLES = """Examples:

\b
  hardneg report runs/sf --out runs/sf-report
  hardneg report runs/loop --out runs/loop-report
"""

AUDIT_EXAMPLES = """Examples:

\b
  # any OpenAI-compatible server: --llm-url, or export HARDNEG_LLM_URL=http://localhost:8000/v1
  hardneg audit runs/sf --llm-model Qwen/Qwen2.5-7B-Instruct --sample 20 --out runs/sf-audit
"""

SYNTH_EXAMPLES = """Examples:

\b
  # any OpenAI-compatible server: --llm-url, or export HARDNEG_LLM_URL=http://localhost:8000/v1
  hardneg synth runs/sf --llm-model Qwen/Qwen2.5-7B-Instruct --queries 10 --dry-run
  hardneg synth runs/sf --llm-model Qwen/Qwen2.5-7B-Instruct --queries 10 --out runs/sf-synth
  hardneg export runs/sf --format sentence-transformers --synthetic runs/sf-synth --out runs/mix
"""

CACHE_LIST_EXAMPLES = """Examples:

\b
  hardneg cache list
  hardneg cache list --json
"""

CACHE_PRUNE_EXAMPLES = """Examples:

\b
  hardneg cache prune --older-than 7d --dry-run
  hardneg cache prune --max-size 10G
"""
