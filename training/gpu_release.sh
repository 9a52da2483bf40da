#!/usr/bin/env bash
# Train the release candidates on one CUDA machine that has PyTorch but no network and no
# fillpoint install, within a fixed wall-clock budget, and bring the checkpoints back.
#
#   training/gpu_release.sh pack PACK            # here: source snapshot, token arrays, and the
#                                                #   tokenizer where it is not the shipped one
#   training/gpu_release.sh train PACK OUT MIN   # there: train every run in parallel for MIN
#                                                #   minutes, write OUT/checkpoints.tar.part-*
#   training/gpu_release.sh unpack OUT RUNS      # here: restore fp32 checkpoints to RUNS/<run>/
#
# CODEFILL=0 packs the decoders' data only, DECODERS=0 CodeFill's only; VALID_TOKENS=N cuts
# the validation split to N tokens and XZ_LEVEL sets the compression (6), for a pack that
# must fit beside the checkout; ONLY="name ..." trains only the runs named (a compact
# checkpoint is about a byte per parameter: name runs whose checkpoints fit what may come
# back from the machine, e.g. pycoder-m6 and pycoder-l together, 45M parameters).
#
# The runs share the GPU: models this small leave most of an H100 idle between kernels, so
# several of them in parallel use it better than one alone. Checkpoints travel compact
# (training/transport.py: int8 matrices with per-row scales, bf16 vectors) and come back as
# float32 on unpack; the shipped models are int8 in any case.
set -euo pipefail

# name | trainer | config overrides (JSON). Same data and seed for every run of a trainer.
# pycoder-m is the shipped shape, which more tokens no longer improve; pycoder-m6 (deeper)
# and pycoder-l (deeper and wider) are the sizes up, to ship where their quality pays for
# their slower calls on two cores.
RUNS=(
  'pycoder-m|pycoder|{"n_layer": 4, "n_head": 6, "n_embd": 384, "lr": 1.5e-3, "dropout": 0.1, "compile": true}'
  'pycoder-m-notype|pycoder|{"n_layer": 4, "n_head": 6, "n_embd": 384, "lr": 1.5e-3, "dropout": 0.1, "compile": true, "type_loss_weight": 0.0}'
  'pycoder-m6|pycoder|{"n_layer": 6, "n_head": 6, "n_embd": 384, "lr": 1.5e-3, "dropout": 0.1, "compile": true}'
  'pycoder-l|pycoder|{"n_layer": 6, "n_head": 8, "n_embd": 512, "lr": 1e-3, "dropout": 0.1, "compile": true}'
  'codefill|codefill|{"block_size": 256}'
  'codefill-names|codefill|{"block_size": 256, "names_only": true}'
)
COMMON='{"block_size": 512, "batch_size": 128, "warmup_steps": 300, "max_steps": 1000000,
         "min_lr": 1e-4, "eval_every": 500, "eval_batches": 20, "log_every": 10, "bf16": true}'
PART_BYTES=15M  # the way back takes files of at most 16 MiB
DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-"{}"}  # overrides for every run, e.g. a tiny shape for a dry run on CPU
ONLY=${ONLY:-}  # names of the runs to train (space-separated); empty: all of them
PYTHON=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}  # several trainers share the host's cores

unxz() {  # xz-utils where present, else Python's lzma
  if command -v xz >/dev/null; then xz -dc "$1"; else
    "$PYTHON" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  fi
}

pack() {
  local pack=$1
  mkdir -p "$pack"
  # The committed package code only: work in progress stays behind, and so does the shipped model.
  git archive --format=tar -o "$pack/src.tar" HEAD lsp completion training models ':!models/release'
  # The shipped tokenizer travels with the checkout anyway; only another one is packed.
  if ! cmp -s runs/tokenizer.json models/release/tokenizer.json; then
    cp runs/tokenizer.json "$pack/tokenizer.json"
  fi
  if [[ ${DECODERS:-1} != 0 ]]; then pack_tokens "$pack"; fi  # DECODERS=0: CodeFill only
  if [[ -d data/codefill && ${CODEFILL:-1} != 0 ]]; then  # CODEFILL=0: decoders only
    tar -C data -cf - codefill | xz -T2 -"${XZ_LEVEL:-6}" >"$pack/codefill.tar.xz"
  fi
  du -sh "$pack"/*
}

pack_tokens() {
  local pack=$1 tmp
  # The way there takes 64 MiB with the checkout: the validation split can be cut to its
  # first VALID_TOKENS tokens (an evaluation draws 20 batches, 1.3M tokens, from it).
  tmp=$(mktemp -d)
  mkdir "$tmp/tokens"
  cp data/tokens/train.* "$tmp/tokens/"
  "$PYTHON" - data/tokens "$tmp/tokens" "${VALID_TOKENS:-0}" <<'PY'
import sys
from pathlib import Path
import numpy as np
src, dst, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for kind in ("ids", "types"):
    a = np.load(src / f"valid.{kind}.npy", mmap_mode="r")
    np.save(dst / f"valid.{kind}.npy", np.ascontiguousarray(a[:n] if n else a))
PY
  tar -C "$tmp" -cf - tokens | xz -T2 -"${XZ_LEVEL:-6}" >"$pack/tokens.tar.xz"
  rm -rf "$tmp"
}

train_all() {
  local pack=$1 out=$2 minutes=$3
  local work=${TMPDIR:-/tmp}/fillpoint-gpu
  rm -rf "$work" && mkdir -p "$work/src" "$work/data" "$work/runs" "$work/logs" "$work/pkg/fillpoint"
  tar -xf "$pack/src.tar" -C "$work/src"
  if [[ -f $pack/tokens.tar.xz ]]; then unxz "$pack/tokens.tar.xz" | tar -xf - -C "$work/data"; fi
  if [[ -f $pack/codefill.tar.xz ]]; then unxz "$pack/codefill.tar.xz" | tar -xf - -C "$work/data"; fi
  for d in lsp completion models training; do ln -s "$work/src/$d" "$work/pkg/fillpoint/$d"; done
  export PYTHONPATH=$work/pkg PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'

  local tokenizer=$pack/tokenizer.json
  [[ -f $tokenizer ]] || tokenizer=$(realpath models/release/tokenizer.json)
  local pids=() spec name trainer overrides
  for spec in "${RUNS[@]}"; do
    IFS='|' read -r name trainer overrides <<<"$spec"
    if [[ -n $ONLY && " $ONLY " != *" $name "* ]]; then continue; fi
    if [[ $trainer == codefill && ! -d $work/data/codefill ]]; then continue; fi
    if [[ $trainer == pycoder && ! -d $work/data/tokens ]]; then continue; fi
    # a trainer that overruns its budget by a minute (a hung compile, a stuck device) is
    # interrupted, so that the checkpoints saved so far still come back
    timeout -s INT "$(( ${minutes%.*} * 60 + 60 ))" \
      "$PYTHON" - "$work" "$tokenizer" "$name" "$trainer" "$COMMON" "$overrides" \
      "$minutes" "$DEVICE" "$EXTRA" >"$work/logs/$name.log" 2>&1 <<'PY' &
import json, sys
work, tokenizer, name, trainer, common, overrides, minutes, device, extra = sys.argv[1:]
cfg = {**json.loads(common), **json.loads(overrides), **json.loads(extra)}
cfg.update(out=f"{work}/runs/{name}", max_minutes=float(minutes), device=device)
if trainer == "pycoder":
    from fillpoint.training.train import TrainConfig, train
    cfg.update(data=f"{work}/data/tokens", tokenizer=tokenizer)
else:
    from fillpoint.training.train_codefill import CodeFillTrainConfig as TrainConfig, train
    cfg.update(data=f"{work}/data/codefill")
train(TrainConfig(**cfg))
PY
    pids+=($!)
  done
  local status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  for log in "$work"/logs/*.log; do echo "== $log"; tr '\r' '\n' <"$log" | tail -n 3; done
  bring_back "$work" "$out"
  return $status
}

bring_back() {
  local work=$1 out=$2 run
  mkdir -p "$work/back" "$out"
  for run in "$work"/runs/*/; do
    run=${run%/}
    [[ -f $run/checkpoint/model.safetensors ]] || continue
    local dest=$work/back/$(basename "$run")
    mkdir -p "$dest"
    cp "$run"/metrics.jsonl "$run"/train_config.json "$dest"/
    cp "$run"/loss.png "$dest"/ 2>/dev/null || true
    cp "$run"/checkpoint/config.json "$run"/checkpoint/trainer_state.json "$dest"/
    "$PYTHON" -m fillpoint.training.transport shrink \
      "$run/checkpoint/model.safetensors" "$dest/model.safetensors"
  done
  cp "$work"/logs/*.log "$work/back/" 2>/dev/null || true
  tar -C "$work/back" -cf - . | split -b "$PART_BYTES" - "$out/checkpoints.tar.part-"
  ls -l "$out"
}

unpack() {
  local out=$1 runs=$2 tmp
  tmp=$(mktemp -d)
  cat "$out"/checkpoints.tar.part-* | tar -xf - -C "$tmp"
  mkdir -p "$runs"
  for dest in "$tmp"/*/; do
    dest=${dest%/}
    local name run
    name=$(basename "$dest") run=$runs/$(basename "$dest")
    mkdir -p "$run/checkpoint"
    cp "$dest"/metrics.jsonl "$dest"/train_config.json "$run"/
    cp "$dest"/loss.png "$run"/ 2>/dev/null || true
    cp "$dest"/config.json "$dest"/trainer_state.json "$run/checkpoint/"
    # paths as they would be had the run been made here, not the other machine's
    "$PYTHON" - "$run/train_config.json" "$run" <<'PY'
import json, sys
from pathlib import Path
path, run = Path(sys.argv[1]), sys.argv[2]
cfg = json.loads(path.read_text())
cfg.update(data="data/" + Path(cfg["data"]).name, out=run)
if "tokenizer" in cfg:
    cfg["tokenizer"] = "runs/tokenizer.json"
path.write_text(json.dumps(cfg, indent=2))
PY
    "$PYTHON" -m fillpoint.training.transport restore \
      "$dest/model.safetensors" "$run/checkpoint/model.safetensors"
    cp "$tmp"/"$name".log "$run/train.log" 2>/dev/null || true
    echo "restored $run"
  done
  rm -rf "$tmp"
}

case ${1:-} in
  pack) pack "$2" ;;
  train) train_all "$2" "$3" "$4" ;;
  unpack) unpack "$2" "$3" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
