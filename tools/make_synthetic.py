#!/usr/bin/env python
"""Small, learnable, deterministic synthetic data sets for testing the training tools without downloads.

    python tools/make_synthetic.py imagefolder --out /tmp/synth --classes 4 --train-per-class 32 \
        --val-per-class 16 --size 32 --seed 0 [--format png|jpg]

``imagefolder`` writes the ImageNet layout that ``tools/train.py`` reads::

    OUT/train/<class>/<index>.png
    OUT/val/<class>/<index>.png

Class ``k`` is a shape (circle, square, triangle, cross, ...) filled with its own hue, drawn at a random position,
size and shade over a random low-contrast noise background, so a few epochs of training separate the classes
(colour is enough for a global-pool classifier; shape and texture add a second cue) while no two images are equal.
Every image is drawn from its own generator seeded by (seed, split, class, index): the output does not depend on
the order of writing or on what else was written.

Each layout is one subcommand (``WRITERS``); dense-prediction layouts (COCO detection, ADE20K segmentation) plug in
beside ``imagefolder`` the same way: a ``write_<layout>(out, ...)`` function plus an ``add_arguments`` hook.
The functions are importable (``from tools.make_synthetic import write_imagefolder``).
"""
import argparse
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond', 'hstripes', 'vstripes', 'checker', 'dots')
MAX_CLASSES = len(SHAPES)
SPLITS = {'train': 0, 'val': 1}


def class_names(num_classes: int) -> list:
    """Folder names, sorted the way ImageFolder readers sort them (index = class id)."""
    _check_num_classes(num_classes)
    return [f'c{k:02d}_{SHAPES[k]}' for k in range(num_classes)]


def _check_num_classes(num_classes: int):
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f'num_classes must be in [2, {MAX_CLASSES}] (one shape per class); got {num_classes}')


def class_colour(k: int, num_classes: int) -> np.ndarray:
    """Saturated RGB of hue k / num_classes (evenly spaced hues, so classes differ most in colour)."""
    h = (k / num_classes) * 6.0
    x = 1.0 - abs(h % 2.0 - 1.0)
    sector = int(h) % 6
    r, g, b = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][sector]
    return np.array([r, g, b], dtype=np.float32) * 255.0


def _shape_mask(shape: str, size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Boolean (size, size) mask of ``shape`` centred at (cx, cy) with half-extent ``radius`` (pixels)."""
    mask = Image.new('L', (size, size), 0)
    d = ImageDraw.Draw(mask)
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    bar = max(1.0, radius / 3.0)
    if shape == 'circle':
        d.ellipse(box, fill=255)
    elif shape == 'square':
        d.rectangle(box, fill=255)
    elif shape == 'triangle':
        d.polygon([(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)], fill=255)
    elif shape == 'cross':
        d.rectangle([cx - radius, cy - bar, cx + radius, cy + bar], fill=255)
        d.rectangle([cx - bar, cy - radius, cx + bar, cy + radius], fill=255)
    elif shape == 'ring':
        d.ellipse(box, fill=255)
        inner = radius * 0.55
        d.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif shape == 'diamond':
        d.polygon([(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)], fill=255)
    else:  # textures fill the box: the pattern, not the outline, is the cue
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        inside = (abs(xx - cx) <= radius) & (abs(yy - cy) <= radius)
        period = max(2.0, radius / 2.0)
        if shape == 'hstripes':
            pattern = (yy // period) % 2 == 0
        elif shape == 'vstripes':
            pattern = (xx // period) % 2 == 0
        elif shape == 'checker':
            pattern = ((xx // period) + (yy // period)) % 2 == 0
        elif shape == 'dots':
            pattern = ((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2 <= (period / 3) ** 2
        else:
            raise ValueError(f'unknown shape {shape!r}; known: {SHAPES}')
        return inside & pattern
    return np.asarray(mask) > 127


def draw_image(label: int, num_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size, 3) uint8 RGB image of class ``label``."""
    _check_num_classes(num_classes)
    if not 0 <= label < num_classes:
        raise ValueError(f'label must be in [0, {num_classes}); got {label}')
    if size < 16:
        raise ValueError(f'size must be >= 16 pixels; got {size}')
    background = rng.uniform(60, 190) + rng.normal(0.0, 18.0, (size, size, 1)) + rng.normal(0.0, 6.0, (size, size, 3))
    radius = rng.uniform(0.25, 0.42) * size
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    mask = _shape_mask(SHAPES[label], size, cx, cy, radius)
    colour = class_colour(label, num_classes) * rng.uniform(0.75, 1.0) + rng.normal(0.0, 8.0, 3)
    foreground = colour[None, None, :] + rng.normal(0.0, 10.0, (size, size, 3))
    img = np.where(mask[..., None], foreground, background)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def image_rng(seed: int, split: str, label: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], label, index])


def write_imagefolder(out, num_classes: int = 4, train_per_class: int = 32, val_per_class: int = 16,
                      size: int = 32, seed: int = 0, fmt: str = 'png', quality: int = 95) -> dict:
    """Write ``out/{train,val}/<class>/<index>.<fmt>``; returns a summary dict (also saved as ``out/meta.json``).

    Existing files are overwritten; re-running with the same arguments writes identical PNGs.
    """
    fmt = fmt.lower().lstrip('.')
    if fmt not in ('png', 'jpg', 'jpeg'):
        raise ValueError(f"fmt must be 'png' or 'jpg'; got {fmt!r}")
    names = class_names(num_classes)
    counts = {'train': int(train_per_class), 'val': int(val_per_class)}
    if min(counts.values()) < 1:
        raise ValueError(f'need at least one image per class and split; got {counts}')
    out = Path(out)
    for split, count in counts.items():
        for label, name in enumerate(names):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                img = Image.fromarray(draw_image(label, num_classes, size, image_rng(seed, split, label, index)))
                if fmt == 'png':
                    img.save(folder / f'{index:05d}.png')
                else:
                    img.save(folder / f'{index:05d}.jpg', quality=quality)
    meta = dict(layout='imagefolder', classes=names, size=size, seed=seed, format=fmt,
                train_images=counts['train'] * num_classes, val_images=counts['val'] * num_classes)
    (out / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n')
    return meta


def _add_imagefolder_args(p: argparse.ArgumentParser):
    p.add_argument('--out', required=True, help='output folder (train/ and val/ are created inside)')
    p.add_argument('--classes', type=int, default=4, help=f'number of classes, 2..{MAX_CLASSES}')
    p.add_argument('--train-per-class', type=int, default=32)
    p.add_argument('--val-per-class', type=int, default=16)
    p.add_argument('--size', type=int, default=32, help='image side in pixels')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--format', default='png', choices=('png', 'jpg'))


def _run_imagefolder(args) -> dict:
    return write_imagefolder(args.out, num_classes=args.classes, train_per_class=args.train_per_class,
                             val_per_class=args.val_per_class, size=args.size, seed=args.seed, fmt=args.format)


# layout name -> (help, add_arguments(parser), run(args) -> summary dict)
WRITERS: Dict[str, tuple] = {
    'imagefolder': ('classification: OUT/{train,val}/<class>/*.png', _add_imagefolder_args, _run_imagefolder),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='layout', required=True, metavar='LAYOUT')
    for name, (help_text, add_args, _) in WRITERS.items():
        add_args(sub.add_parser(name, help=help_text))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = build_parser().parse_args(argv)
    summary = WRITERS[args.layout][2](args)
    print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    main()
