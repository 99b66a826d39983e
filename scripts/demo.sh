#!/usr/bin/env bash
# Install flowkit into .venv and run the main job end to end on built-in synthetic videos:
# make labelled videos whose class is in their motion, extract RGB + TV-L1 flow into shards,
# summarise and verify them, write a labelled preview, then train and test small rgb and flow
# networks on them.
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
# A motion laboratory: 4 classes that only motion tells apart (right, left, clockwise,
# anticlockwise), textured shapes moving over a textured, drifting background; 20 videos each.
"$flowkit" synth --out "$out/lab" --task motion --classes 4 --videos-per-class 20
"$flowkit" extract "$out/lab/labels.txt" --out "$out/lab_shards" --short-side 0 --overwrite
"$flowkit" info "$out/lab_shards"
"$flowkit" verify --quiet "$out/lab_shards"
# One video per class, labelled: frames above their TV-L1 flow, then each as a training sample
# sees it (random crop and flip: a flipped rightward flow turns cyan), and the colour legend.
# Colours saturate at 2 px, so that the sprites' slow motion shows.
"$flowkit" view "$out/lab_shards" --frames 4 --crop-size 56 --max-magnitude 2 \
    --out "$out/preview.png" \
    --video right/right_000.mkv --video left/left_000.mkv \
    --video rotate-cw/rotate-cw_000.mkv --video rotate-ccw/rotate-ccw_000.mkv
# Train small rgb and flow networks on the laboratory's training split, then test both on the
# held-out videos: the flow network sees the motion, the rgb network is left guessing (chance
# is 25%).
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
echo "demo done: shards in $out/lab_shards, labelled preview in $out/preview.png, trained networks in"
echo "$out/run_rgb and $out/run_flow (predictions.csv, confusion.png)"
