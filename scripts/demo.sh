#!/usr/bin/env bash
# Install flowkit into .venv and run the main job end to end on built-in synthetic videos:
# make videos with known motion, extract RGB + TV-L1 flow into shards, summarise, write a preview,
# then train and test small rgb and flow networks on a motion-laboratory set.
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
# Train small rgb and flow networks on a motion-laboratory set (4 classes that only motion tells
# apart: right, left, clockwise, anticlockwise), then test both on the held-out videos: the flow
# network sees the motion, the rgb network is left guessing (chance is 25%).
"$flowkit" synth "$out/lab" --task motion --classes 4 --videos-per-class 20
"$flowkit" extract "$out/lab/labels.txt" --out "$out/lab_shards" --short-side 0 --overwrite
for model in rgb flow; do
    rm -rf "$out/run_$model"
    "$flowkit" train "$out/lab_shards" --model "$model" --arch resnet-tiny --input-size 56 \
        --no-flip --split "$out/lab/trainlist01.txt" --out "$out/run_$model" --epochs 30 \
        --batch-size 12 --optimizer adamw --lr 0.002 --schedule cosine --workers 2 --device cpu
done
for model in rgb flow; do
    echo "$model network on the held-out videos:"
    "$flowkit" eval "$out/run_$model" --split "$out/lab/testlist01.txt" --workers 2 --device cpu
done
echo "demo done: shards in $out/shards, flow preview in $out/preview.png, trained networks in"
echo "$out/run_rgb and $out/run_flow (predictions.csv, confusion.png)"
