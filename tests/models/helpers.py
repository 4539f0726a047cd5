"""Helpers shared by the per-family model tests: a short training run and synthetic official-style checkpoints."""
import torch
import torch.nn.functional as F


def train_steps(model, steps=4, size=64, lr=1e-3):
    """``steps`` AdamW steps on one fixed batch of 4 random images (labels 0..3); the losses, for a "loss goes
    down" check."""
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, size, size), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def bn_shapes(prefix, channels):
    """The state_dict entries of one BatchNorm with ``channels`` channels."""
    return {prefix + 'weight': (channels,), prefix + 'bias': (channels,), prefix + 'running_mean': (channels,),
            prefix + 'running_var': (channels,), prefix + 'num_batches_tracked': ()}


def random_state_dict(shapes, seed=0):
    """Random tensors of the given shapes, as a checkpoint would hold them: positive running variances and a
    batch counter for BatchNorm entries, normal values elsewhere."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            out[key] = torch.tensor(100)
        elif key.endswith('running_var'):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g)
    return out
