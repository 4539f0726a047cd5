"""Small timing / measurement helpers shared by tools (demo, bench scripts)."""
import statistics
import time
from typing import Callable, Dict, Sequence

import torch


def time_call(fn: Callable[[], object], warmup: int = 2, reps: int = 5, min_time: float = 0.0) -> Dict[str, float]:
    """Median / min wall time (seconds) of ``fn()`` over ``reps`` runs after ``warmup`` runs.

    With ``min_time`` > 0, keeps repeating until that much time has been spent (useful for fast calls).
    """
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - start) < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {'median': statistics.median(times), 'min': min(times), 'reps': len(times)}


@torch.no_grad()
def inference_latency(model: torch.nn.Module, input_size: Sequence[int] = (3, 224, 224), batch_size: int = 1,
                      warmup: int = 3, reps: int = 10) -> Dict[str, float]:
    """Eval-mode forward latency on the model's device (CPU timing; synchronises on CUDA)."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(batch_size, *input_size, device=device)

    def run():
        model(x)
        if device.type == 'cuda':
            torch.cuda.synchronize()

    return time_call(run, warmup=warmup, reps=reps)


def compare_models_latency(names: Sequence[str], reference: str, input_size: Sequence[int] = (3, 224, 224),
                           batch_size: int = 1, reps: int = 10, rounds: int = 3) -> Dict[str, Dict[str, float]]:
    """Batch-``batch_size`` CPU latency of timm models measured side by side, with the ratio to ``reference``.

    Models are timed in interleaved rounds (A, B, A, B, ...) so a slow phase of a shared machine hits all of them;
    each model's figure is the median over rounds of per-round medians.
    """
    import timm

    models = {n: timm.create_model(n).eval() for n in dict.fromkeys([reference, *names])}
    per_round = {n: [] for n in models}
    for _ in range(rounds):
        for n, m in models.items():
            per_round[n].append(inference_latency(m, input_size, batch_size, warmup=2, reps=reps)['median'])
    ref = statistics.median(per_round[reference])
    return {n: {'ms': statistics.median(t) * 1e3, 'ratio_to_reference': statistics.median(t) / ref}
            for n, t in per_round.items()}
