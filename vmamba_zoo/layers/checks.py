"""Input validation shared by all models: bad input gets one clear error, never a silent wrong result."""
import torch


def check_image_input(x: torch.Tensor, in_chans: int, min_size: int, what: str = 'model') -> None:
    """Raise ValueError unless ``x`` is a (B, in_chans, H, W) batch with H, W >= min_size."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return  # shapes are fixed while tracing; the checks ran when the input was made
    if x.ndim != 4:
        raise ValueError(f'{what} expects a 4-D image batch (B, C, H, W); got a tensor of shape {tuple(x.shape)}')
    if x.shape[1] != in_chans:
        raise ValueError(
            f'{what} was built for {in_chans} input channels but got {x.shape[1]} '
            f'(input shape {tuple(x.shape)}); create the model with in_chans={x.shape[1]} to change it')
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(
            f'{what} needs images of at least {min_size}x{min_size} (its total stride); got {h}x{w}')
