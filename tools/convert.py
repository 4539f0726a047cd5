#!/usr/bin/env python
"""Convert an official checkpoint of any zoo family into the zoo's format (safetensors) and verify it.

    python tools/convert.py --model vmamba_tiny --checkpoint vssm1_tiny_0230s_ckpt_epoch_264.pth
    python tools/convert.py --model vim_tiny_patch16_224 --checkpoint vim_t_midclstok_76p1acc.pth --out vim_t.safetensors

The checkpoint goes through the family's ``checkpoint_filter_fn`` (the same converter ``pretrained=True`` uses;
timm's own for timm models such as MambaOut), is loaded strictly (missing / unexpected keys are reported and
stop the conversion), a forward pass on a random image checks the result is finite, and the tensors are written
as safetensors — by default to ``<weights dir>/<model>.safetensors`` (``$VMAMBA_ZOO_WEIGHTS`` or
``~/.cache/vmamba_zoo``), where ``timm.create_model(model, pretrained=True)`` finds them.

Official checkpoints are read with ``torch.load(weights_only=True)``. Some releases also pickle training objects
(argparse Namespaces, configs); those need ``--trust-pickle``, which unpickles arbitrary code: only for files
from a source you trust.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import timm  # noqa: E402
import vmamba_zoo  # noqa: E402,F401  (registers the models)
from vmamba_zoo.models._registry import weights_dir  # noqa: E402


def load_checkpoint(path, trust_pickle=False):
    if str(path).endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends: the message names the offending global
        if not trust_pickle:
            raise SystemExit(f'{path}: not loadable with weights_only=True ({str(err).splitlines()[0]}).\n'
                             'If you trust the file, rerun with --trust-pickle.') from None
        return torch.load(path, map_location='cpu', weights_only=False)


def converter_of(model):
    """The ``checkpoint_filter_fn`` of the model's family (its module), or timm's own for timm models."""
    module = sys.modules[type(model).__module__]
    fn = getattr(module, 'checkpoint_filter_fn', None)
    if fn is None:
        raise SystemExit(f'{type(model).__module__} has no checkpoint_filter_fn: cannot convert')
    return fn


def convert(model_name, checkpoint, out=None, trust_pickle=False, check_forward=True, input_size=None):
    """Returns (output path, report dict). Raises SystemExit with a clear message on any mismatch."""
    model = timm.create_model(model_name, pretrained=False).eval()
    raw = load_checkpoint(checkpoint, trust_pickle)
    try:
        state_dict = converter_of(model)(raw, model)
    except ValueError as err:  # the zoo's converters name missing/unexpected keys and shape mismatches
        raise SystemExit(f'{checkpoint} does not fit {model_name}: {err}') from None
    result = model.load_state_dict(state_dict, strict=False)
    report = {'model': model_name, 'tensors': len(state_dict),
              'params': sum(t.numel() for t in state_dict.values()),
              'missing_keys': list(result.missing_keys), 'unexpected_keys': list(result.unexpected_keys)}
    if result.missing_keys or result.unexpected_keys:
        raise SystemExit(f'{checkpoint} does not fit {model_name}: {len(result.missing_keys)} missing keys '
                         f'{result.missing_keys[:10]}, {len(result.unexpected_keys)} unexpected keys '
                         f'{result.unexpected_keys[:10]}')
    if check_forward:
        size = tuple(input_size or model.pretrained_cfg.get('input_size', (3, 224, 224)))
        with torch.no_grad():
            logits = model(torch.randn(1, *size))
        if not torch.isfinite(logits).all():
            raise SystemExit(f'{model_name}: converted weights give non-finite outputs')
        report['logits_shape'] = tuple(logits.shape)
    out = Path(out) if out else weights_dir() / f'{model_name}.safetensors'
    out.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file
    tmp = out.with_suffix(out.suffix + '.tmp')
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp),
              metadata={'model': model_name, 'source': Path(checkpoint).name, 'format': 'vmamba_zoo'})
    tmp.replace(out)
    return out, report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True, help=f'zoo or timm model name, e.g. {vmamba_zoo.list_models()[0]}')
    ap.add_argument('--checkpoint', required=True, help='official checkpoint (.pth/.pt/.bin/.safetensors)')
    ap.add_argument('--out', help='output .safetensors (default: the weights dir, where pretrained=True looks)')
    ap.add_argument('--trust-pickle', action='store_true', help='allow full unpickling (trusted files only)')
    ap.add_argument('--no-forward', action='store_true', help='skip the forward-pass check')
    ap.add_argument('--input-size', type=int, nargs=3, metavar=('C', 'H', 'W'),
                    help="forward-check input (default: the model's pretrained cfg, e.g. 3 224 224)")
    args = ap.parse_args(argv)
    out, report = convert(args.model, args.checkpoint, args.out, args.trust_pickle, not args.no_forward,
                          args.input_size)
    print(f"{report['model']}: {report['tensors']} tensors, {report['params'] / 1e6:.2f}M values, "
          f"{len(report['missing_keys'])} missing / {len(report['unexpected_keys'])} unexpected keys"
          + (f", forward OK {report['logits_shape']}" if 'logits_shape' in report else '') + f" -> {out}")
    return out


if __name__ == '__main__':
    main()
