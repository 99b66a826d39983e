"""``flowkit flow``: optical flow between two images, as a .flo, KITTI .png or .npy file."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from flowkit.cli.grouped import GroupedCommand
from flowkit.cli.options import (BACKENDS_NOTE, flow_config_from_options, flow_parameter_options,
                                 png_path, precision_option)
from flowkit.errors import ConfigError, InputError
from flowkit.flow import get_backend, list_backends
from flowkit.flow.files import flow_format, read_rgb_image, write_flow
from flowkit.flow.viz import flow_to_color, save_png

_IMAGE = click.Path(exists=True, dir_okay=False, path_type=Path)


EXAMPLES = """\b
Examples:
  flowkit flow frame10.png frame11.png --out flow10.flo --viz flow10.png
  flowkit flow frame10.png frame11.png --out flow10.png      # KITTI 16-bit PNG
  flowkit flow frame10.png frame11.png --out flow10.flo --method raft \\
      --raft-weights raft-things.pth --raft-iters 20 --device cuda
"""


# --help shows the options under these headings (GroupedCommand); names are parameter names.
GROUPS = {
    "Flow": ["method", "device", "precision"],
    "Output": ["out_path", "viz_path"],
}


@click.command("flow", cls=GroupedCommand, groups=GROUPS, notes={"Flow": BACKENDS_NOTE},
               epilog=EXAMPLES)
@click.argument("first", type=_IMAGE)
@click.argument("second", type=_IMAGE)
@click.option("--method", type=click.Choice(list_backends()), default="tvl1", show_default=True,
              help="Flow method (flowkit backends lists them).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Flow file to write (flow maps FIRST to SECOND), its format by extension: "
                   ".flo Middlebury (float32 u, v); .png KITTI 16-bit (R, G = u, v as "
                   "f*64+2^15, B = valid; 1/64 px steps, within +-512 px); .npy float32 "
                   "H x W x 2.")
@click.option("--viz", "viz_path", type=click.Path(dir_okay=False, path_type=Path),
              callback=png_path,
              help="Also write the flow as a PNG (named .png) in the Middlebury colour wheel.")
@click.option("--device", default="cpu", show_default=True,
              help="Device for the PyTorch backends (cpu, cuda, cuda:N); OpenCV's run on cpu.")
@precision_option
@flow_parameter_options
def flow_command(first: Path, second: Path, method: str, out_path: Path, viz_path: Path | None,
                 device: str, precision: str, **flow_params: object) -> None:
    """Compute optical flow from image FIRST to image SECOND."""
    flow_format(out_path)  # an unknown extension is refused before any work
    if viz_path is not None and viz_path.resolve() == out_path.resolve():
        raise ConfigError(f"--viz {viz_path} is the --out file; give the picture another name")
    config = flow_config_from_options(method, flow_params, precision)
    backend = get_backend(method, config, device=device)
    image1, image2 = read_rgb_image(first), read_rgb_image(second)
    if image1.shape != image2.shape:
        raise InputError(f"{second}: size {image2.shape[1]}x{image2.shape[0]} differs from "
                         f"{first}'s {image1.shape[1]}x{image1.shape[0]}")
    flow = backend(image1[None], image2[None])[0]
    write_flow(out_path, flow)
    if viz_path is not None:
        save_png(viz_path, flow_to_color(flow))
    magnitude = np.linalg.norm(flow, axis=-1)
    click.echo(f"wrote {out_path}: {flow.shape[1]}x{flow.shape[0]}, mean |flow| "
               f"{magnitude.mean():.3f} px, max {magnitude.max():.3f} px")
