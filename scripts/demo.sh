#!/usr/bin/env bash
# Install flowkit into .venv and run the main job end to end on built-in synthetic videos:
# make labelled videos whose class is in their motion, extract RGB + TV-L1 flow into shards,
# summarise and verify them, write a labelled preview, then train and test small rgb and flow
# networks on them. Each step says how long it takes on 2 cores as it starts, and how long it
# took as it ends: about 4 minutes in all after the installs (245 s in two runs on a 2-core AMD
# EPYC shared with other jobs; a step takes up to twice as long while another job holds a core).
# Usage: bash scripts/demo.sh [output folder, default demo/]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-demo}"
venv="${FLOWKIT_VENV:-.venv}"
steps=8
started=$SECONDS
step_started=$SECONDS
step() {  # step NUMBER "what" "expected duration": say what starts, and how long the last took
    [ "$1" = 1 ] || echo "      ($((SECONDS - step_started)) s)"
    step_started=$SECONDS
    echo "[$1/$steps] $2 ($3 on 2 cores)..."
}
step 1 "installing flowkit and its dependencies (CPU-only torch) into $venv" \
    "minutes the first time, downloading several hundred MB; about 10 s after"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet .
flowkit="$venv/bin/flowkit"
# A motion laboratory: 4 classes that only motion tells apart (right, left, clockwise,
# anticlockwise), textured shapes moving over a textured, drifting background; 20 videos each.
step 2 "making 80 synthetic videos in $out/lab" "about 5 s"
"$flowkit" synth --out "$out/lab" --task motion --classes 4 --videos-per-class 20
step 3 "extracting RGB and TV-L1 flow into $out/lab_shards" "about 60 s"
"$flowkit" extract "$out/lab/labels.txt" --out "$out/lab_shards" --short-side 0 --overwrite
step 4 "summarising and verifying the shards" "about 5 s"
"$flowkit" info "$out/lab_shards"
"$flowkit" verify --quiet "$out/lab_shards"
# One video per class, labelled: frames above their TV-L1 flow, then each as a training sample
# sees it (random segments and multi-scale crop, drawn per video; no flip, as the training
# below: a flipped rightward flow would turn cyan, and right into left), and the colour legend.
# Colours saturate at 2 px, so that the sprites' slow motion shows.
step 5 "writing the labelled preview $out/preview.png" "about 5 s"
"$flowkit" view "$out/lab_shards" --frames 4 --crop-size 56 --no-flip --max-magnitude 2 \
    --out "$out/preview.png" \
    --video right/right_000.mkv --video left/left_000.mkv \
    --video rotate-cw/rotate-cw_000.mkv --video rotate-ccw/rotate-ccw_000.mkv
# Train small rgb and flow networks on the laboratory's training split, then test both on the
# held-out videos: the flow network sees the motion, the rgb network is left guessing (chance
# is 25%).
number=6
for model in rgb flow; do
    duration="about $([ "$model" = rgb ] && echo 50 || echo 60) s"
    step "$number" "training the $model network, 30 epochs, a line per epoch" "$duration"
    number=$((number + 1))
    rm -rf "$out/run_$model"
    "$flowkit" train "$out/lab_shards" --model "$model" --arch resnet-tiny --input-size 56 \
        --no-flip --split "$out/lab/trainlist01.txt" --out "$out/run_$model" --epochs 30 \
        --batch-size 12 --optimizer adamw --lr 0.002 --schedule cosine --workers 2 --device cpu
done
step 8 "testing both networks on the held-out videos" "about 15 s"
for model in rgb flow; do
    echo "$model network on the held-out videos:"
    "$flowkit" eval "$out/run_$model" --split "$out/lab/testlist01.txt" --workers 2 --device cpu
done
echo "      ($((SECONDS - step_started)) s)"
echo "demo done in $((SECONDS - started)) s: shards in $out/lab_shards, labelled preview in"
echo "$out/preview.png, trained networks in $out/run_rgb and $out/run_flow (predictions.csv,"
echo "confusion.png)"
