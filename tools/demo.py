#!/usr/bin/env python
"""Quick start: build vmamba_tiny through timm, classify an image, compare params / FLOPs / CPU latency.

    python tools/demo.py [--image PATH] [--checkpoint OFFICIAL_OR_ZOO_WEIGHTS.pth] [--models ...]

Without --checkpoint the weights are randomly initialised (no downloads happen at run time), so the predicted
classes are meaningless; pass an official VMamba release file to get real predictions.
"""
import argparse
import sys
from pathlib import Path

import torch
import timm
from PIL import Image, ImageDraw
from timm.data import ImageNetInfo, create_transform, resolve_data_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vmamba_zoo  # noqa: E402  (registers the zoo's models with timm)
from vmamba_zoo.benchmark import inference_latency  # noqa: E402
from vmamba_zoo.flops import count_flops, count_params  # noqa: E402


def synthetic_image(size=256):
    """A deterministic picture (sky, sun, ground, house) so the demo needs no files."""
    img = Image.new('RGB', (size, size), (120, 170, 230))
    d = ImageDraw.Draw(img)
    d.rectangle([0, size * 0.65, size, size], fill=(70, 140, 60))
    d.ellipse([size * 0.7, size * 0.08, size * 0.9, size * 0.28], fill=(250, 220, 60))
    d.rectangle([size * 0.2, size * 0.42, size * 0.55, size * 0.72], fill=(180, 80, 60))
    d.polygon([(size * 0.15, size * 0.44), (size * 0.375, size * 0.25), (size * 0.6, size * 0.44)], fill=(110, 50, 40))
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='vmamba_tiny')
    ap.add_argument('--image', help='image file to classify (default: a generated picture)')
    ap.add_argument('--checkpoint', help='official or zoo checkpoint for --model (converted on load)')
    ap.add_argument('--models', nargs='+', default=['vmamba_tiny', 'vmamba_small', 'vmamba_base', 'convnext_tiny'],
                    help='models for the params / FLOPs / latency table (timm names work too)')
    ap.add_argument('--latency-models', nargs='+', default=['vmamba_tiny', 'convnext_tiny'],
                    help='models whose batch-1 CPU latency is measured')
    args = ap.parse_args()
    torch.manual_seed(0)

    overlay = dict(file=args.checkpoint) if args.checkpoint else None
    model = timm.create_model(args.model, pretrained=bool(args.checkpoint), pretrained_cfg_overlay=overlay).eval()
    cfg = resolve_data_config({}, model=model)
    transform = create_transform(**cfg)
    image = Image.open(args.image).convert('RGB') if args.image else synthetic_image()
    with torch.no_grad():
        probs = model(transform(image).unsqueeze(0)).softmax(-1)[0]
    info = ImageNetInfo()
    weights = args.checkpoint or 'random init (pass --checkpoint for real predictions)'
    print(f'{args.model}: weights = {weights}; input {cfg["input_size"]}, crop_pct {cfg["crop_pct"]}')
    for p, i in zip(*probs.topk(5)):
        print(f'  {p.item():6.2%}  {i.item():4d}  {info.index_to_description(i.item())}')

    print(f'\n{"model":<16}{"params (M)":>12}{"GFLOPs":>10}{"CPU bs1 ms":>12}')
    for name in args.models:
        m = timm.create_model(name).eval()
        params = count_params(m) / 1e6
        flops = count_flops(m, (3, 224, 224)) / 1e9
        ms = ''
        if name in args.latency_models:
            ms = f'{inference_latency(m, (3, 224, 224), reps=10)["median"] * 1e3:.1f}'
        print(f'{name:<16}{params:>12.2f}{flops:>10.2f}{ms:>12}')
    print(f'\nvmamba_zoo {vmamba_zoo.__version__}: {len(vmamba_zoo.list_models())} models: '
          + ', '.join(vmamba_zoo.list_models()))


if __name__ == '__main__':
    main()
