"""Accuracy of class scores: top-k, mean class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Accuracy:
    """Video-level results of one evaluation.

    Attributes:
        top1, top5: fraction of videos whose label is the best / among the 5 best scores.
        mean_class_accuracy: top-1 of each class, averaged over the classes that have videos
            (UCF101 and HMDB51 report this too).
        num_videos: videos scored.
    """

    top1: float
    top5: float
    mean_class_accuracy: float
    num_videos: int

    def as_dict(self) -> dict[str, float | int]:
        return {"top1": self.top1, "top5": self.top5,
                "mean_class_accuracy": self.mean_class_accuracy, "num_videos": self.num_videos}


def top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: whether each label is among the ``k`` highest of its (N, K) scores.

    Ties rank the lower class index first (as a stable sort would), so equal scores never
    count as a hit for free: a constant score vector hits only labels 0 .. k-1.
    """
    own = scores[np.arange(len(labels)), labels][:, None]
    earlier = np.arange(scores.shape[1])[None, :] < labels[:, None]
    rank = (scores > own).sum(axis=1) + ((scores == own) & earlier).sum(axis=1)
    return rank < k


def accuracy(scores: np.ndarray, labels: np.ndarray) -> Accuracy:
    """Top-1, top-5 and mean class accuracy of (N, K) scores against (N,) labels."""
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return Accuracy(0.0, 0.0, 0.0, 0)
    top1 = top_k_hits(scores, labels, 1)
    per_class = [top1[labels == c].mean() for c in np.unique(labels)]
    return Accuracy(float(top1.mean()), float(top_k_hits(scores, labels, 5).mean()),
                    float(np.mean(per_class)), int(len(labels)))


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix
