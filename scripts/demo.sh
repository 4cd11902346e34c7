#!/usr/bin/env bash
# Set up (idempotent) and run the main job end to end on the shipped SciFact sample, offline:
# embed -> fit -> compress -> eval against the baselines. Outputs go to demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
smec=.venv/bin/smec-compress
out=demo-out
mkdir -p "$out"
$smec embed sample/scifact --out "$out/sample.parquet"
$smec fit "$out/sample.parquet" --dims 128,64,32,16 --out "$out/head"
$smec compress "$out/head" "$out/sample.parquet" --dim 64 --out "$out/sample.64d.parquet"
$smec eval "$out/sample.parquet" --qrels sample/scifact/qrels/test.tsv --head "$out/head" --dims 16,32,64 --out "$out/report"
