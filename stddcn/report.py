"""What an evaluation leaves behind for people: predictions.csv and a confusion-matrix figure."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from stddcn.metrics import confusion_matrix


def write_predictions(path: Path, video_ids: list[str], labels: np.ndarray, scores: np.ndarray,
                      class_names: list[str]) -> None:
    """One row per video: id, true class, predicted class, correct, the five best classes,
    and the softmax probability of the true and of the predicted class."""
    probabilities = _softmax(scores)
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    partial = Path(path).with_name(Path(path).name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "label", "label_name", "predicted", "predicted_name",
                         "correct", "top5", "p_label", "p_predicted"])
        for video_id, label, best, probs in zip(video_ids, labels, top5, probabilities):
            predicted = int(best[0])
            writer.writerow([video_id, int(label), class_names[label], predicted,
                             class_names[predicted], int(predicted == label),
                             " ".join(str(int(c)) for c in best),
                             f"{probs[label]:.6f}", f"{probs[predicted]:.6f}"])
    partial.replace(path)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def plot_confusion(path: Path, labels: np.ndarray, predicted: np.ndarray,
                   class_names: list[str], title: str = "") -> None:
    """Row-normalised confusion matrix (rows: true class) with class names, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")  # files only; no display is needed or wanted
    import matplotlib.pyplot as plt

    count = len(class_names)
    matrix = confusion_matrix(predicted, labels, count).astype(np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = min(4 + 0.22 * count, 30)  # inches: names stay readable up to ~100 classes
    figure, axes = plt.subplots(figsize=(side + 1.5, side))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(count)
    font = max(4, min(10, 400 // max(count, 1)))
    axes.set_xticks(ticks, class_names, rotation=90, fontsize=font)
    axes.set_yticks(ticks, class_names, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if count <= 20:
        for row in range(count):
            for column in range(count):
                if matrix[row, column]:
                    axes.text(column, row, int(matrix[row, column]), ha="center", va="center",
                              fontsize=font, color="white" if shares[row, column] > 0.5
                              else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    axes.set_title(title)
    figure.tight_layout()
    partial = Path(path).with_name(Path(path).name + ".partial.png")
    figure.savefig(partial, dpi=100)
    plt.close(figure)
    partial.replace(path)
