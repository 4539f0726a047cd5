"""count_flops: fvcore MACs with the zoo's handles (selective scan formula, broadcasting matmul)."""
import torch
from torch import nn

from vmamba_zoo.flops import count_flops, count_params
from vmamba_zoo.ops import selective_scan


class ScanOnly(nn.Module):
    """u -> selective_scan with fixed projections, to check the formula 9*B*L*D*N + B*D*L."""

    def __init__(self, dim=8, d_state=4, k=2):
        super().__init__()
        self.k, self.dim, self.d_state = k, dim, d_state
        self.A = nn.Parameter(-torch.rand(k * dim, d_state))

    def forward(self, x):  # x: (B, K*D, H, W) as an "image" so count_flops can make the input
        b = x.shape[0]
        u = x.flatten(2)
        length = u.shape[-1]
        bc = torch.ones(b, self.k, self.d_state, length)
        return selective_scan(u, u, self.A, bc, bc, D=torch.ones(self.k * self.dim), delta_softplus=True)


def test_selective_scan_formula():
    m = ScanOnly(dim=8, d_state=4, k=2)
    b, d, n, length = 2, 16, 4, 5 * 7
    assert count_flops(m, (16, 5, 7), batch_size=b) == 9 * b * length * d * n + b * d * length


class PerDirectionLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 6, 8))

    def forward(self, x):  # x: (B, 32, H, W) -> (B, 4, 8, L) -> matmul with (4, 6, 8)
        b = x.shape[0]
        return torch.matmul(self.w, x.flatten(2).view(b, 4, 8, -1))


def test_broadcasting_matmul_counts_batch():
    m = PerDirectionLinear()
    for b in (1, 3):
        assert count_flops(m, (32, 3, 3), batch_size=b) == b * 4 * 6 * 8 * 9


def test_conv_and_linear_counted_like_fvcore():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    assert count_flops(m, (3, 4, 4)) == 8 * 3 * 9 * 16 + 8 * 16 * 10
    assert count_params(m) == sum(p.numel() for p in m.parameters())
