#!/usr/bin/env bash
# Install flowkit into .venv and run the main job end to end on built-in synthetic videos:
# make videos with known motion, extract RGB + TV-L1 flow into shards, summarise, write a preview.
# Usage: bash scripts/demo.sh [output folder, default demo/]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-demo}"
venv="${FLOWKIT_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet .
flowkit="$venv/bin/flowkit"
"$flowkit" synth "$out/videos" --num-videos 4 --num-frames 12
"$flowkit" extract "$out/videos/labels.txt" --out "$out/shards" --overwrite
"$flowkit" info "$out/shards"
"$flowkit" verify --quiet "$out/shards"
# One row pair per motion class (right red, left cyan, down yellow, up violet), then each video
# as a training sample sees it (random crop and flip: a flipped rightward flow turns cyan).
"$flowkit" view "$out/shards" --frames 4 --max-magnitude 2 --out "$out/preview.png" \
    --video right/right_0.mp4 --video left/left_1.mp4 --video down/down_2.mp4 --video up/up_3.mp4
echo "demo done: shards in $out/shards, flow preview in $out/preview.png"
