#!/bin/bash
# The product's CUDA paths, end to end, on a machine with a GPU (no GPU: nothing here is meant for CI).
#
#   bash scripts/gpu_check.sh [MODEL] [CORPUS_DIR]     # MODEL: minilm (default) or a local model directory
#
# On the bundled sample: embed (auto = fp16 on CUDA, fp32, bf16, 2 workers, CPU), the one-liner mine,
# the exports, train (ColBERT contrastive and distillation, bi-encoder MNRL and cached MNRL,
# cross-encoder), eval (bi-encoder on CUDA and on the CPU, ColBERT with MaxSim on the GPU), mining
# with a cross-encoder and a ColBERT teacher, and eval --rerank. Then the embeddings' agreement across
# precisions, workers and devices (cosine per row), and with CORPUS_DIR (a BEIR folder) the encoding
# time of its corpus at each precision. Every step prints `== rc=N MS ms: COMMAND`; the script exits
# non-zero if a core step (embed, mine, export, ColBERT train and eval) fails.
set -u
PY=${PY:-python3}; M=${1:-minilm}; D=${2:-}; S=examples/scifact-sample; W=${WORK:-$(mktemp -d)}
H="$PY -m hardneg"; mkdir -p "$W"
t() { local s; s=$(date +%s%N); "$@"; local rc=$?; echo "== rc=$rc $(( ($(date +%s%N) - s) / 1000000 )) ms: ${*: -12}" >&2; return $rc; }
core() {
  t $H embed $S --model $M --out $W/emb-auto --workdir $W/cache --quiet || return 1
  t $H mine $S --model $M --workdir $W/cache --out $W/run --quiet > /dev/null || return 1
  t $H export $W/run --format sentence-transformers --out $W/st --quiet || return 1
  t $H export $W/run --format pylate-kd --out $W/kd --quiet || return 1
  t $H train $W/st --architecture colbert --model $M --out $W/colbert --quiet || return 1
  t $H eval $S --model $W/colbert --architecture colbert --split test --json --allow-seen-queries --workdir $W/ev \
    > $W/eval-colbert.json || return 1
}
echo "work directory: $W"
core || { echo "CORE CHECKS FAILED"; exit 1; }
echo "CORE CHECKS OK"
t $H embed $S --model $M --precision fp32 --out $W/emb-fp32 --workdir $W/cache --quiet
t $H embed $S --model $M --precision bf16 --out $W/emb-bf16 --workdir $W/cache --quiet
t $H embed $S --model $M --workers 2 --out $W/emb-w2 --workdir $W/cache --quiet
t $H embed $S --model $M --device cpu --precision fp32 --out $W/emb-cpu --workdir $W/cache --quiet
compare() {  # cosine agreement of two embeddings artifacts, row by row
  $PY - "$1" "$2" <<'PYEOF'
import glob, sys
import numpy as np, pyarrow.parquet as pq
def load(path):
    out = {}
    for part, key in (("corpus", "doc_id"), ("queries", "query_id")):
        for f in sorted(glob.glob(f"{path}/{part}/*.parquet")):
            t = pq.read_table(f, columns=[key, "embedding"])
            vecs = np.asarray(t["embedding"].combine_chunks().flatten()).reshape(t.num_rows, -1)
            out.update({f"{part}:{i}": v for i, v in zip(t[key].to_pylist(), vecs)})
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
keys = sorted(set(a) & set(b))
A = np.stack([a[k] for k in keys]).astype(np.float64); B = np.stack([b[k] for k in keys]).astype(np.float64)
cos = (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)
print(f"{sys.argv[1]} vs {sys.argv[2]}: {len(keys)} rows, cosine min {cos.min():.6f} mean {cos.mean():.6f}, identical {np.array_equal(A, B)}")
PYEOF
}
for e in emb-fp32 emb-bf16 emb-w2; do compare $W/emb-auto $W/$e; done
compare $W/emb-cpu $W/emb-fp32
t $H train $W/kd --architecture colbert --loss distillation --model $M --out $W/colbert-kd --quiet
t $H train $W/st --architecture biencoder --model $M --out $W/bi --quiet
t $H train $W/st --architecture biencoder --loss cached-mnrl --model $M --out $W/bi-cached --quiet
t $H train $W/st --architecture cross-encoder --model $M --out $W/ce --quiet
t $H eval $S --model $W/bi --split test --json --allow-seen-queries --workdir $W/ev2 > $W/eval-bi-cuda.json
t $H eval $S --model $W/bi --split test --json --allow-seen-queries --device cpu --workdir $W/ev3 > $W/eval-bi-cpu.json
t $H eval $S --model $W/colbert-kd --architecture colbert --split test --json --allow-seen-queries --workdir $W/ev4 > $W/eval-kd.json
$PY -c "import json, sys; [print(f, json.load(open(f))['metrics']) for f in sys.argv[1:]]" $W/eval-*.json
t $H mine $S --model $M --teacher $W/ce --scores-from teacher --workdir $W/cache --out $W/run-ce --quiet > /dev/null
t $H mine $S --model $M --teacher $W/colbert --scores-from teacher --workdir $W/cache --out $W/run-colbert --quiet > /dev/null
t $H eval $S --model $M --rerank $W/ce --split test --json --workdir $W/ev5 > /dev/null
if [ -n "$D" ]; then  # encoding time of a real corpus at each precision, one after another, each from scratch
  for p in fp16 fp32 bf16; do  # fp16 needs a GPU: on a CPU it fails with a message and is left out
    rm -rf $W/corpus-$p $W/corpus-cache-$p
    t $H embed $D --model $M --precision $p --out $W/corpus-$p --workdir $W/corpus-cache-$p --quiet --json > $W/corpus-$p.json \
      || rm -f $W/corpus-$p.json
  done
  $PY -c "import json, sys; [print(f, json.load(open(f))['timings']) for f in sys.argv[1:]]" $W/corpus-*.json
  [ -d $W/corpus-fp16 ] && compare $W/corpus-fp32 $W/corpus-fp16
fi
echo "DONE"
