#!/usr/bin/env python
"""Small, learnable, deterministic synthetic data sets for testing the training tools without downloads.

    python tools/make_synthetic.py imagefolder --out /tmp/synth --classes 4 --train-per-class 32 \
        --val-per-class 16 --size 32 --seed 0 [--format png|jpg]
    python tools/make_synthetic.py coco --out /tmp/coco --classes 3 --train-images 32 --val-images 8 --size 64
    python tools/make_synthetic.py ade20k --out /tmp/ade --classes 3 --train-images 32 --val-images 8 --size 64

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


# --------------------------------------------------------------------------------------------------------------
# Dense prediction: COCO instance segmentation and ADE20K semantic segmentation
# --------------------------------------------------------------------------------------------------------------
# Objects are filled polygons, so the COCO polygon annotation is exactly the drawn mask. Each category has its own
# outline and hue (learnable by box, mask and pixel classifiers within a few hundred steps).
DENSE_SHAPES = ('square', 'triangle', 'diamond', 'octagon', 'pentagon', 'hexagon')
DENSE_SPLITS = {'train': 2, 'val': 3}  # generator streams distinct from the imagefolder splits


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list:
    """Vertices [(x, y), ...] of a regular-ish polygon of ``shape`` centred at (cx, cy), half-extent r."""
    sides = {'square': 4, 'triangle': 3, 'diamond': 4, 'octagon': 8, 'pentagon': 5, 'hexagon': 6}[shape]
    start = {'square': np.pi / 4, 'diamond': 0.0}.get(shape, -np.pi / 2) + angle
    ts = start + 2 * np.pi * np.arange(sides) / sides
    return [(float(cx + r * np.cos(t)), float(cy + r * np.sin(t))) for t in ts]


def _check_dense_classes(num_classes: int):
    if not 1 <= num_classes <= len(DENSE_SHAPES):
        raise ValueError(f'num_classes must be in [1, {len(DENSE_SHAPES)}]; got {num_classes}')


def draw_scene(num_classes: int, size, max_objects: int, rng: np.random.Generator):
    """A (H, W, 3) uint8 image with 1..max_objects non-overlapping polygons; returns (image, objects) where each
    object is dict(label, polygon, mask)."""
    _check_dense_classes(num_classes)
    h, w = (size, size) if isinstance(size, int) else size
    if min(h, w) < 32:
        raise ValueError(f'dense scenes need images of at least 32x32; got {h}x{w}')
    img = rng.uniform(70, 170) + rng.normal(0.0, 14.0, (h, w, 1)) + rng.normal(0.0, 5.0, (h, w, 3))
    taken = np.zeros((h, w), bool)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            label = int(rng.integers(num_classes))
            r = rng.uniform(0.12, 0.28) * min(h, w)
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            poly = _polygon(DENSE_SHAPES[label], cx, cy, r, rng.uniform(-0.2, 0.2))
            canvas = Image.new('L', (w, h), 0)
            ImageDraw.Draw(canvas).polygon(poly, fill=255)
            mask = np.asarray(canvas) > 127
            if mask.sum() >= 16 and not (mask & taken).any():
                break
        else:
            continue
        taken |= mask
        colour = class_colour(label, max(num_classes, 2)) * rng.uniform(0.8, 1.0) + rng.normal(0.0, 6.0, 3)
        img = np.where(mask[..., None], colour[None, None, :] + rng.normal(0.0, 8.0, (h, w, 3)), img)
        objects.append(dict(label=label, polygon=poly, mask=mask))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def write_coco(out, num_classes: int = 3, train_images: int = 32, val_images: int = 8, size: int = 64,
               max_objects: int = 3, seed: int = 0) -> dict:
    """COCO instance segmentation layout, as mmdet's ``CocoDataset`` reads it::

        OUT/train2017/<id>.png  OUT/val2017/<id>.png
        OUT/annotations/instances_{train,val}2017.json   (polygon masks, bbox xywh, area = mask pixels)

    Category ids are 1..num_classes, named after their outline (``DENSE_SHAPES``)."""
    _check_dense_classes(num_classes)
    out = Path(out)
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=k + 1, name=DENSE_SHAPES[k], supercategory='shape') for k in range(num_classes)]
    counts = {'train': int(train_images), 'val': int(val_images)}
    total_objects = {}
    for split, count in counts.items():
        folder = out / f'{split}2017'
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            rng = np.random.default_rng([seed, DENSE_SPLITS[split], 0, index])
            img, objects = draw_scene(num_classes, size, max_objects, rng)
            name = f'{index:06d}.png'
            Image.fromarray(img).save(folder / name)
            images.append(dict(id=index + 1, file_name=name, height=img.shape[0], width=img.shape[1]))
            for obj in objects:
                ys, xs = np.nonzero(obj['mask'])
                x0, y0 = float(xs.min()), float(ys.min())
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=index + 1, category_id=obj['label'] + 1, iscrowd=0,
                    bbox=[x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
                    area=float(obj['mask'].sum()),
                    segmentation=[[round(v, 2) for xy in obj['polygon'] for v in xy]]))
        total_objects[split] = len(annotations)
        (out / 'annotations' / f'instances_{split}2017.json').write_text(json.dumps(
            dict(images=images, annotations=annotations, categories=categories)))
    meta = dict(layout='coco', classes=[c['name'] for c in categories], size=size, seed=seed,
                train_images=counts['train'], val_images=counts['val'], train_objects=total_objects['train'],
                val_objects=total_objects['val'])
    (out / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n')
    return meta


def write_ade20k(out, num_classes: int = 3, train_images: int = 32, val_images: int = 8, size: int = 64,
                 max_objects: int = 3, seed: int = 0) -> dict:
    """ADE20K layout, as mmseg's ``ADE20KDataset`` reads it (``reduce_zero_label=True``)::

        OUT/images/{training,validation}/<id>.jpg
        OUT/annotations/{training,validation}/<id>.png   (uint8: 0 = unlabelled, 1 = background, k + 2 = shape k)

    With ``reduce_zero_label`` the classes are ('background', <shapes>...), num_classes + 1 of them."""
    _check_dense_classes(num_classes)
    out = Path(out)
    counts = {'training': int(train_images), 'validation': int(val_images)}
    for split, count in counts.items():
        (out / 'images' / split).mkdir(parents=True, exist_ok=True)
        (out / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng([seed, DENSE_SPLITS['train' if split == 'training' else 'val'], 1, index])
            img, objects = draw_scene(num_classes, size, max_objects, rng)
            seg = np.ones(img.shape[:2], np.uint8)
            for obj in objects:
                seg[obj['mask']] = obj['label'] + 2
            Image.fromarray(img).save(out / 'images' / split / f'{index:06d}.jpg', quality=95)
            Image.fromarray(seg).save(out / 'annotations' / split / f'{index:06d}.png')
    meta = dict(layout='ade20k', classes=['background'] + list(DENSE_SHAPES[:num_classes]), size=size, seed=seed,
                train_images=counts['training'], val_images=counts['validation'])
    (out / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n')
    return meta


def _add_dense_args(p: argparse.ArgumentParser):
    p.add_argument('--out', required=True)
    p.add_argument('--classes', type=int, default=3, help=f'object categories, 1..{len(DENSE_SHAPES)}')
    p.add_argument('--train-images', type=int, default=32)
    p.add_argument('--val-images', type=int, default=8)
    p.add_argument('--size', type=int, default=64, help='image side in pixels (>= 32)')
    p.add_argument('--max-objects', type=int, default=3)
    p.add_argument('--seed', type=int, default=0)


def _run_dense(writer):
    def run(args) -> dict:
        return writer(args.out, num_classes=args.classes, train_images=args.train_images,
                      val_images=args.val_images, size=args.size, max_objects=args.max_objects, seed=args.seed)
    return run


# layout name -> (help, add_arguments(parser), run(args) -> summary dict)
WRITERS: Dict[str, tuple] = {
    'imagefolder': ('classification: OUT/{train,val}/<class>/*.png', _add_imagefolder_args, _run_imagefolder),
    'coco': ('instance segmentation: OUT/{train,val}2017/*.png + OUT/annotations/instances_*.json',
             _add_dense_args, _run_dense(write_coco)),
    'ade20k': ('semantic segmentation: OUT/{images,annotations}/{training,validation}/*', _add_dense_args,
               _run_dense(write_ade20k)),
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
