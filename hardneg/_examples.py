"""Examples shown under each command's help (click's \\b keeps each on its own line)."""

EMBED_EXAMPLES = """Examples:

\b
  hardneg embed data/scifact --model minilm --out runs/sf-emb
  hardneg embed pairs.jsonl --corpus corpus.jsonl --lang fr --out runs/fr-emb
"""

INDEX_EXAMPLES = """Examples:

\b
  hardneg index runs/sf-emb --out runs/sf-index
  hardneg index runs/sf-emb --exact --out runs/sf-exact
  hardneg index runs/big-emb --storage e4m3 --m 16 --threads 2 --out runs/big-index
"""

MINE_EXAMPLES = """Examples:

\b
  hardneg mine data/scifact --model minilm --min-rank 10 --max-rank 110 --out runs/sf
  hardneg mine data/piaf_fr --lang fr --min-rank 10 --max-rank 110 --out runs/fr
  cat pairs.jsonl | hardneg mine - --model minilm --out runs/pairs
  hardneg mine runs/sf-index --num-negatives 5 --sampling top --out runs/sf-top
  hardneg mine runs/sf-index --sampling top --relative-margin 0.05 --out runs/sf-nv   (NV-Retriever)
  hardneg mine runs/sf-index --sampling simans --out runs/sf-simans
  hardneg mine runs/sf-index --retriever hybrid --out runs/sf-hybrid
  hardneg mine runs/sf-index --teacher ./my-reranker --ce-max-score 0.9 --out runs/sf-denoised
  hardneg mine runs/sf-index --teacher ./my-reranker --scores-from teacher --relative-margin 0.05 --sampling top --min-rank 0 --out runs/sf-nv
  hardneg mine runs/sf-index --teacher ./my-reranker --kd-depth 32 --out runs/sf-kd   (then export --format pylate-kd)
  hardneg mine runs/sf-index --labels runs/sf-labels --out runs/sf-labelled   (after `hardneg label import`)
"""

EXPORT_EXAMPLES = """Examples:

\b
  hardneg export runs/sf --format colbert --out runs/sf-colbert
  hardneg export runs/sf --format colbert --nway 4 --out runs/sf-colbert-4way
  hardneg export runs/sf --format sentence-transformers --out runs/sf-st
  hardneg export runs/sf --format triplets --out - | head
  hardneg export runs/sf --format msmarco-triples --out runs/sf-tsv
  hardneg export runs/sf-denoised --format colbert --scores --nway 16 --out runs/sf-kd
  hardneg export runs/sf --format pylate-kd --out runs/sf-pylate
  hardneg export runs/sf --format flagembedding --out runs/sf-flag
  hardneg export runs/sf --format tevatron --out runs/sf-tevatron
"""

TRAIN_EXAMPLES = """Examples:

\b
  hardneg export runs/sf --format sentence-transformers --out runs/sf-st
  hardneg train runs/sf-st --model minilm --out models/sf-r1
  hardneg train runs/sf-st --model minilm --loss cached-mnrl --batch-size 256 --epochs 2 --out models/sf-big
  hardneg train runs/sf-st --model minilm --architecture colbert --out models/sf-colbert
  hardneg train runs/sf-kd --model minilm --architecture colbert --loss distillation --out models/sf-colbert-kd
  hardneg train runs/sf-st --model minilm --architecture cross-encoder --negatives-per-row 5 --out models/sf-ce
"""

EVAL_EXAMPLES = """Examples:

\b
  hardneg eval data/scifact --model minilm --split test
  hardneg eval data/scifact --model models/sf-r1 --split test --json
  hardneg eval data/scifact --model models/sf-colbert --split test        # ColBERT: exact MaxSim
  hardneg eval data/scifact --model minilm --architecture colbert          # zero-shot ColBERT baseline
"""

LOOP_EXAMPLES = """Examples:

\b
  hardneg loop data/scifact --rounds 3 --dev-split test --out runs/sf-loop
  hardneg loop data/scifact --rounds 5 --dev-split dev --patience 2 --labels runs/sf-labels --out runs/sf-loop
  hardneg loop data/scifact --rounds 2 --dev-split test --architecture colbert --out runs/sf-loop-colbert
"""

SELECT_EXAMPLES = """Examples:

\b
  hardneg select runs/sf --budget 50 --out runs/sf-select
  hardneg select runs/sf --budget 100 --strategy entropy --diversity 0.3 --out runs/sf-select
"""

REPORT_EXAMPLES = """Examples:

\b
  hardneg report runs/sf --out runs/sf-report
  hardneg report runs/sf-loop --out runs/sf-loop-report
"""

AUDIT_EXAMPLES = """Examples:

\b
  hardneg audit runs/sf --llm-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct --sample 200
"""

SYNTH_EXAMPLES = """Examples:

\b
  hardneg synth runs/sf --llm-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct --queries 200 --dry-run
  hardneg synth runs/sf --llm-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct --queries 200 --out runs/sf-synth
  hardneg export runs/sf --format sentence-transformers --synthetic runs/sf-synth --synthetic-ratio 0.25 --out runs/sf-st
"""
