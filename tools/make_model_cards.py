#!/usr/bin/env python
"""Write one model card per family, ``model_cards/<family>.md``, from the registry and measured benchmarks.

    python tools/make_model_cards.py                       # all families, benchmarks from model_cards/benchmarks/
    python tools/make_model_cards.py --bench a.json b.json --families vmamba vim --out model_cards

Families are found, not listed: every name in ``vmamba_zoo.list_models()`` belongs to the family of the module
that registers it (``vmamba_zoo/models/<family>.py``; timm's own models the zoo exposes, e.g. MambaOut, to timm's
module of that name). A new family gets a card as soon as its models are registered:

* measured numbers come from ``tools/benchmark.py --json`` files (params, GFLOPs at 224, CPU / GPU throughput and
  batch-1 latency) and ``tools/bench_gpu.py`` model summaries (``model_cards/measurements/*.json``: GPU bf16
  throughput); each card says what was measured, on what and when (the JSON's ``environment``);
* paper facts (paper variant names, top-1, params / FLOPs as published, detection / segmentation results, the
  architecture and scan summaries, citation, weights licence) come from ``model_cards/facts/<family>.yaml`` when it
  exists. Without one, the card falls back to the pretrained cfgs (paper, code, licence, weight notes) and the
  family module's docstring, and says which facts are missing.

The output is deterministic for given inputs (no timestamps of its own), so regenerated cards diff cleanly.
"""
import argparse
import importlib
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import vmamba_zoo  # noqa: E402
from timm.models import get_pretrained_cfg  # noqa: E402
from timm.models._registry import _model_to_module  # noqa: E402  (timm keeps no public name -> module map)

CARDS = REPO / 'model_cards'
FACTS = CARDS / 'facts'
BENCHMARKS = CARDS / 'benchmarks'
DASH = '—'


def families() -> Dict[str, List[str]]:
    """family (registering module's name) -> its registered model names, in registry order."""
    out: Dict[str, List[str]] = defaultdict(list)
    for name in vmamba_zoo.list_models():
        out[_model_to_module.get(name, name.split('_')[0])].append(name)
    return dict(sorted(out.items()))


def load_facts(family: str) -> dict:
    path = FACTS / f'{family}.yaml'
    if not path.is_file():
        return {}
    facts = yaml.safe_load(path.read_text()) or {}
    if not isinstance(facts, dict):
        raise ValueError(f'{path}: expected a mapping')
    return facts


def _gpu_summary_rows(data: dict, name: str) -> List[dict]:
    """``tools/bench_gpu.py --measurements`` summaries ({model: {infer_bf16_img_s, batch, device, ...}}, 224x224):
    the bf16 inference figure is the GPU throughput, as ``tools/benchmark.py`` measures it on CUDA (bf16 autocast)."""
    rows = []
    for model, m in data.items():
        if not isinstance(m, dict) or 'infer_bf16_img_s' not in m:
            continue
        env = {'file': name, 'device': 'cuda', 'gpu': m.get('device'), 'batch': m.get('batch'), 'amp': 'bf16',
               'note': 'tools/bench_gpu.py model summary (see model_cards/gpu_kernels.md for the setup)'}
        rows.append({'model': model, 'device': 'cuda', 'batch': m.get('batch'), 'resolution': 224,
                     'infer_img_s': m['infer_bf16_img_s'], 'latency_bs1_ms': None, '_env': env})
    return rows


def load_benchmarks(paths: Sequence[Path]) -> List[dict]:
    """Rows of every ``tools/benchmark.py --json`` file (or ``tools/bench_gpu.py`` model summary), each row carrying
    its file's environment."""
    rows = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if 'rows' not in data:
            rows += _gpu_summary_rows(data, Path(path).name)
            continue
        env = dict(data.get('environment') or {}, file=Path(path).name)
        for row in data.get('rows', []):
            if 'error' not in row and not row.get('oom'):
                rows.append(dict(row, _env=env))
    return rows


def _module_summary(family: str) -> str:
    """First paragraph after the title of the family module's docstring (zoo module first, then timm's)."""
    for module_name in (f'vmamba_zoo.models.{family}', f'timm.models.{family}'):
        try:
            doc = importlib.import_module(module_name).__doc__ or ''
        except ImportError:
            continue
        paragraphs = [' '.join(p.split()) for p in doc.strip().split('\n\n') if p.strip()]
        if len(paragraphs) > 1:
            return paragraphs[1]
        if paragraphs:
            return paragraphs[0]
    return ''


def _fmt(value, digits=2) -> str:
    if value is None:
        return DASH
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


class Measured:
    """The benchmark rows of one model, split into counts (params / FLOPs at 224) and CPU / GPU timings."""

    def __init__(self, name: str, rows: List[dict]):
        mine = [r for r in rows if r['model'] == name and r.get('resolution') == 224]
        self.params = next((r['params_m'] for r in mine if 'params_m' in r), None)
        self.gflops = next((r['gflops'] for r in mine if 'gflops' in r), None)
        self.timing = {dev: [r for r in mine if r.get('device') == dev and 'infer_img_s' in r]
                       for dev in ('cpu', 'cuda')}

    def best(self, device: str) -> Optional[dict]:
        """The timing row with the largest batch (the throughput figure); latency is batch 1 in every row."""
        rows = self.timing[device]
        return max(rows, key=lambda r: r['batch']) if rows else None


def _environment_lines(used: List[dict]) -> List[str]:
    """One line per benchmark file that contributed numbers: device, machine, versions, batch, date (what it has)."""
    lines = []
    for env in sorted({json.dumps(e, sort_keys=True) for e in used}):
        env = json.loads(env)
        where = env.get('gpu') or env.get('cpu')
        parts = [f"{env.get('device', '?')} ({where}" + (f", {env['threads']} threads)" if env.get('threads')
                                                          else ')') if where else env.get('device', '?')]
        parts += [f'{key} {env[key]}' for key in ('torch', 'timm', 'batch', 'amp') if env.get(key) is not None]
        if env.get('date_utc'):
            parts.append(f"measured {env['date_utc']}")
        if env.get('load_avg_1m') is not None:
            parts.append(f"1-minute load average {env['load_avg_1m']}")
        lines.append(f"- `{env['file']}`: " + ', '.join(parts) + (f". {env['note']}" if env.get('note') else ''))
    return lines


def render(family: str, names: List[str], facts: dict, rows: List[dict]) -> str:
    cfgs = {n: get_pretrained_cfg(n) for n in names}
    first = next((c for c in cfgs.values() if c is not None), None)
    title = facts.get('name') or (first.paper_name.split(':')[0] if first and first.paper_name else family)
    paper = facts.get('paper') or (first.paper_name if first else None)
    arxiv = facts.get('arxiv') or ((first.paper_ids or '').replace('arXiv:', '') if first else '')
    code = facts.get('code') or (first.origin_url if first else None)
    license_text = facts.get('weights_license') or (f'{first.license} (pretrained cfg)' if first and first.license
                                                   else 'unknown')
    variants = facts.get('variants') or {}
    names = [n for n in variants if n in names] + [n for n in names if n not in variants]  # the paper's order
    cfgs = {n: cfgs[n] for n in names}
    measured = {n: Measured(n, rows) for n in names}
    exposed = [n for n in names if vmamba_zoo.models._registry.is_exposed_timm_model(n)]

    out = [f'# {title}', '',
           f'<!-- generated by tools/make_model_cards.py from the registry, model_cards/facts/{family}.yaml and '
           f'model_cards/benchmarks/*.json; edit those, not this file -->', '']
    if paper:
        out.append(f"- **Paper**: {paper}" + (f" — [arXiv:{arxiv}](https://arxiv.org/abs/{arxiv})" if arxiv else ''))
    if code:
        out.append(f"- **Official code**: {code}" + (f" (read at commit `{facts['commit']}`)" if facts.get('commit')
                                                    else ''))
    out.append(f'- **License of the official weights**: {license_text}')
    out.append(f"- **Implementation**: {'timm' if exposed else 'vmamba_zoo'} — `vmamba_zoo/models/{family}.py`"
               + (' (lists timm\'s own models)' if exposed else ''))
    out.append('')

    # ---- variants
    cpu_batch = sorted({m.best('cpu')['batch'] for m in measured.values() if m.best('cpu')})
    gpu_batch = sorted({m.best('cuda')['batch'] for m in measured.values() if m.best('cuda')})
    cpu_col = f"CPU img/s (batch {'/'.join(map(str, cpu_batch))})" if cpu_batch else 'CPU img/s'
    gpu_col = f"GPU img/s (batch {'/'.join(map(str, gpu_batch))})" if gpu_batch else 'GPU img/s'
    out += ['## Variants', '',
            f'| model | paper name | params (M) | GFLOPs (224²) | paper params / FLOPs | ImageNet-1k top-1 (paper) '
            f'| {cpu_col} | CPU latency bs1 (ms) | {gpu_col} | train config |',
            '|---|---|---|---|---|---|---|---|---|---|']
    used_envs = []
    for n in names:
        fact = variants.get(n) or {}
        m = measured[n]
        cpu, gpu = m.best('cpu'), m.best('cuda')
        used_envs += [r['_env'] for r in (cpu, gpu) if r]
        if m.params is not None or m.gflops is not None:
            used_envs += [r['_env'] for r in rows if r['model'] == n and 'params_m' in r][:1]
        config = REPO / 'configs' / 'cls' / family / f'{n}.yaml'
        paper_size = ' / '.join(str(fact[k]) for k in ('params', 'flops') if fact.get(k)) or DASH
        out.append(
            f"| `{n}` | {fact.get('paper_name', DASH)} | {_fmt(m.params)} | {_fmt(m.gflops)} | {paper_size} "
            f"| {_fmt(fact.get('top1'), 1)} | {_fmt(cpu['infer_img_s'], 1) if cpu else DASH} "
            f"| {_fmt(cpu['latency_bs1_ms'], 1) if cpu else DASH} | {_fmt(gpu['infer_img_s'], 0) if gpu else DASH} "
            f"| {f'`configs/cls/{family}/{n}.yaml`' if config.is_file() else DASH} |")
    notes = [f"`{n}`: {variants[n]['note']}" for n in names if (variants.get(n) or {}).get('note')]
    if notes:
        out += ['', 'Paper notes: ' + '; '.join(notes) + '.']
    out += ['', '### What was measured', '',
            'params and GFLOPs: `vmamba_zoo.flops.count_params` / `count_flops` (fvcore MACs, head included, the '
            "papers' convention) at 3×224×224. Throughput: `tools/benchmark.py`, median of timed forward passes "
            'after warm-up (no gradient), img/s at the batch shown; latency: one image. A dash: not measured.']
    env_lines = _environment_lines(used_envs)
    out += [''] + (env_lines or ['- no benchmark results for this family yet (`tools/benchmark.py --json`)'])
    if not facts:
        out += ['', f'Paper facts (paper variant names, top-1, det/seg results) are not recorded yet: add '
                    f'`model_cards/facts/{family}.yaml` (same keys as the other families\' files).']

    # ---- architecture / scan
    summary = facts.get('architecture') or _module_summary(family)
    out += ['', '## Architecture', '', ' '.join(summary.split()) if summary else DASH]
    if facts.get('scan'):
        out += ['', '## Scan strategy', '', ' '.join(facts['scan'].split())]

    # ---- downstream
    down = facts.get('downstream') or {}
    if down.get('rows'):
        out += ['', '## Detection and segmentation (paper)', '',
                '| backbone | ' + ' | '.join(down['columns']) + ' |',
                '|---|' + '---|' * len(down['columns'])]
        for n, values in down['rows'].items():
            out.append(f'| `{n}` | ' + ' | '.join(str(v) for v in values) + ' |')
    elif down.get('source'):
        out += ['', '## Detection and segmentation (paper)', '', 'No results recorded.']
    if down.get('source'):
        out += ['', f"Source: {down['source']}."]

    # ---- usage
    # the smallest measured variant, else the paper's first
    smallest = min(names, key=lambda n: (measured[n].params if measured[n].params is not None else 1e9,
                                         names.index(n)))
    weights = [f'- `{n}`: {"; ".join(c.notes)}' for n, c in cfgs.items() if c is not None and c.notes]
    out += ['', '## Usage', '', '```python', 'import timm, torch', 'import vmamba_zoo  # registers the models',
            '', f"model = timm.create_model('{smallest}', num_classes=10)",
            f"feats = timm.create_model('{smallest}', features_only=True)  # multi-scale maps for dense heads",
            'with torch.no_grad():', '    logits = model(torch.randn(1, 3, 224, 224))', '',
            '# official weights, converted on load (a local file; the zoo downloads nothing):',
            f"model = timm.create_model('{smallest}', pretrained=True,",
            "                           pretrained_cfg_overlay=dict(file='/path/to/official_checkpoint.pth'))",
            '```', '', '```bash',
            f'python tools/convert.py --model {smallest} --checkpoint OFFICIAL.pth   # -> ~/.cache/vmamba_zoo/'
            f'{smallest}.safetensors, found by pretrained=True',
            f'python tools/train.py --config configs/cls/{family}/{smallest}.yaml --data /path/to/imagenet '
            f'--output runs/{smallest}',
            f'python tools/benchmark.py {smallest} --compare resnet50 --json bench.json', '```']
    if weights:
        out += ['', 'Official weight files (put them anywhere and pass `file=`, or convert them once):', ''] + weights

    # ---- citation
    if facts.get('citation'):
        out += ['', '## Citation', '', '```bibtex', facts['citation'].rstrip(), '```']
    return '\n'.join(out) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--bench', nargs='*', type=Path, default=None,
                    help='tools/benchmark.py --json files (default: model_cards/benchmarks/*.json and the '
                         'tools/bench_gpu.py summaries model_cards/measurements/*.json)')
    ap.add_argument('--families', nargs='*', help='only these families (default: every registered one)')
    ap.add_argument('--out', type=Path, default=CARDS)
    args = ap.parse_args(argv)
    bench = args.bench if args.bench is not None else sorted([*BENCHMARKS.glob('*.json'),
                                                              *(CARDS / 'measurements').glob('*.json')])
    rows = load_benchmarks(bench)
    known = families()
    unknown = sorted(set(args.families or ()) - set(known))
    if unknown:
        raise SystemExit(f'unknown families {unknown}; registered: {sorted(known)}')
    args.out.mkdir(parents=True, exist_ok=True)
    written = {}
    for family, names in known.items():
        if args.families and family not in args.families:
            continue
        path = args.out / f'{family}.md'
        path.write_text(render(family, names, load_facts(family), rows))
        written[family] = path
        print(f'{path}: {len(names)} variants')
    return written


if __name__ == '__main__':
    main()
