"""Training objectives: what a model's :class:`~stddcn.models.Output` is scored by.

A loss is called as ``loss(output, labels, teacher=None)`` and returns a :class:`LossValue`:
the total to minimise and its named parts for the log. Single-stream models use
:class:`CrossEntropy`; STDDCN, whose fusion head teaches its two pathways,
:class:`FusionDistillation`; D3D, taught by a frozen flow network's logits,
:class:`TeacherDistillation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from stddcn.config import TrainConfig
from stddcn.errors import SettingsError
from stddcn.models import Output


@dataclass
class LossValue:
    """``total`` (a scalar tensor with gradients) and ``parts``, its named terms (detached)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def distillation(student: torch.Tensor, teacher: torch.Tensor, kind: str,
                 temperature: float) -> torch.Tensor:
    """How far (B, K) student logits are from the teacher's, averaged over the batch.

    "kl": KL(teacher || student) of the softmax at ``temperature``, times T^2 (Hinton et al.:
    keeps the gradient's size independent of T). "mse": mean over classes and batch of the
    squared logit difference (D3D). Zero when the logits are equal.
    """
    student, teacher = student.float(), teacher.float()
    if kind == "mse":
        return F.mse_loss(student, teacher)
    log_student = F.log_softmax(student / temperature, dim=1)
    log_teacher = F.log_softmax(teacher / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature ** 2


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy of the prediction's logits, with optional label smoothing."""

    label_smoothing: float = 0.0

    def __call__(self, output: Output, labels: torch.Tensor,
                 teacher: Output | None = None) -> LossValue:
        loss = F.cross_entropy(output.logits.float(), labels,
                               label_smoothing=self.label_smoothing)
        return LossValue(loss, {"ce": loss.detach()})


@dataclass(frozen=True)
class FusionDistillation:
    """STDDCN: CE(fusion) + CE(appearance) + CE(motion)
    + w T^2 [KL(fusion || appearance) + KL(fusion || motion)].

    The fusion head is the teacher; with ``detach_teacher`` the distillation terms move the
    students only (the fusion head learns from its own cross-entropy).
    """

    weight: float = 1.0
    kind: str = "kl"
    temperature: float = 2.0
    detach_teacher: bool = True
    students: tuple[str, ...] = ("appearance", "motion")
    teacher_head: str = "fusion"

    def __call__(self, output: Output, labels: torch.Tensor,
                 teacher: Output | None = None) -> LossValue:
        parts = {f"ce_{name}": F.cross_entropy(output.head(name).float(), labels)
                 for name in (self.teacher_head, *self.students)}
        total = sum(parts.values())
        target = output.head(self.teacher_head)
        if self.detach_teacher:
            target = target.detach()
        if self.weight:
            distilled = sum(distillation(output.head(name), target, self.kind,
                                         self.temperature) for name in self.students)
            parts["distill"] = distilled
            total = total + self.weight * distilled
        return LossValue(total, {name: value.detach() for name, value in parts.items()})


@dataclass(frozen=True)
class TeacherDistillation:
    """D3D: CE(student) + lambda * distillation(student logits, frozen teacher's logits)."""

    weight: float = 1.0
    kind: str = "mse"
    temperature: float = 2.0

    def __call__(self, output: Output, labels: torch.Tensor,
                 teacher: Output | None = None) -> LossValue:
        if teacher is None:
            raise SettingsError("this loss distils from a teacher; give --teacher RUN")
        ce = F.cross_entropy(output.logits.float(), labels)
        parts = {"ce": ce.detach()}
        total = ce
        if self.weight:
            distilled = distillation(output.logits, teacher.logits.detach(), self.kind,
                                     self.temperature)
            parts["distill"] = distilled.detach()
            total = ce + self.weight * distilled
        return LossValue(total, parts)


Loss = CrossEntropy | FusionDistillation | TeacherDistillation


def create_loss(config: TrainConfig) -> Loss:
    """The objective of a resolved ``config``'s model (see stddcn.config.resolve)."""
    distill = config.distill
    if config.model.name == "stddcn":
        return FusionDistillation(distill.weight, distill.kind, distill.temperature,
                                  distill.detach_teacher)
    if config.model.name == "d3d":
        return TeacherDistillation(distill.weight, distill.kind, distill.temperature)
    return CrossEntropy()
