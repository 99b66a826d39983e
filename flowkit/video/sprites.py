"""Textured ellipses that move, turn, oscillate and scale, drawn over frames with soft edges.

The motion laboratory (flowkit.video.motion_lab) draws its object and distractor with these.
Positions wrap around the frame (a torus): a sprite leaving on the right re-enters on the left.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from flowkit.video.synth import texture_spectrum


@dataclasses.dataclass(frozen=True)
class Sprite:
    """A textured ellipse and its motion (pixels, frames, degrees clockwise on screen).

    At frame t its centre is ``start + velocity t + amplitude sin(2 pi t / period + phase)``
    (wrapped into the frame; no oscillation when period is 0), its orientation
    ``angle + angular_speed t`` and its size ``radii * exp(scale_rate t)`` (semi-axes along its
    own x and y). Its texture is ``colour + contrast * field``, field the unit-RMS periodic
    texture of ``flowkit.video.synth`` drawn from ``texture_seed``.
    """

    radii: tuple[float, float]
    start: tuple[float, float]
    angle: float
    colour: tuple[float, float, float]
    contrast: float
    texture_seed: tuple[int, ...]
    velocity: tuple[float, float] = (0.0, 0.0)
    angular_speed: float = 0.0
    amplitude: tuple[float, float] = (0.0, 0.0)
    period: float = 0.0
    phase: float = 0.0
    scale_rate: float = 0.0

    def pose(self, t: float) -> tuple[float, float, float, float]:
        """(x, y, angle, scale) at frame ``t``; x and y not wrapped into the frame."""
        wave = math.sin(2 * math.pi * t / self.period + self.phase) if self.period else 0.0
        x = self.start[0] + self.velocity[0] * t + self.amplitude[0] * wave
        y = self.start[1] + self.velocity[1] * t + self.amplitude[1] * wave
        return x, y, self.angle + self.angular_speed * t, math.exp(self.scale_rate * t)


def sprite_texture(sprite: Sprite) -> np.ndarray:
    """(T, T, 3) float32 periodic texture of ``sprite``, T larger than its diameter."""
    size = 2 * math.ceil(max(sprite.radii)) + 4
    field = np.fft.irfft2(texture_spectrum(size, size, sprite.texture_seed), s=(size, size))
    texture = np.asarray(sprite.colour)[:, None, None] + sprite.contrast * field
    return np.ascontiguousarray(texture.transpose(1, 2, 0), dtype=np.float32)


def composite(canvas: np.ndarray, sprite: Sprite, texture: np.ndarray, t: int,
               xs: np.ndarray, ys: np.ndarray) -> None:
    """Blend ``sprite`` at frame ``t`` into ``canvas`` (H, W, 3 float32) in place.

    Each pixel's offset from the centre is taken on the torus (the nearest copy of the sprite),
    which draws the wrap-around copies; it is turned into the sprite's own axes to sample the
    texture (bilinear) and to give the signed distance to the outline (one-pixel soft edge).
    """
    height, width = canvas.shape[:2]
    x, y, angle, scale = sprite.pose(t)
    dx = (xs - x + width / 2) % width - width / 2
    dy = (ys - y + height / 2) % height - height / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    qx, qy = (cos * dx + sin * dy) / scale, (cos * dy - sin * dx) / scale
    a, b = sprite.radii
    rho = np.hypot(qx / a, qy / b)  # 1 on the outline
    slope = np.hypot(qx / a**2, qy / b**2) / np.maximum(rho, 1e-6) / scale  # d rho / d pixel
    alpha = np.clip(0.5 - (rho - 1) / np.maximum(slope, 1e-6), 0.0, 1.0)[..., None]
    centre = texture.shape[0] / 2
    colour = cv2.remap(texture, qx + centre, qy + centre, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_WRAP)
    canvas += alpha * (colour - canvas)
