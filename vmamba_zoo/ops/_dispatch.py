"""One backend registry for every op (selective_scan, nc_ssd, state_fusion, layer_norm): name -> function, a
preference order per device type with an optional predicate per backend, and one environment variable that pins
a backend everywhere. Each op keeps its own registry (``_REGISTRY`` in its package) and its own accept rules."""
import os
from typing import Callable, Dict, Iterable, List, Optional, Tuple


class BackendRegistry:
    """Backends of one op. ``resolve`` returns, in order: the backend named by ``backend=`` or by the
    environment variable; else the first backend preferred on the input's device type whose predicate accepts
    the inputs; else ``default``."""

    def __init__(self, op: str, env_var: str, backends: Dict[str, Callable], default: Callable):
        self.op, self.env_var, self.default = op, env_var, default
        self.backends: Dict[str, Callable] = dict(backends)
        self.preference: Dict[str, List[str]] = {}  # device type -> names, most preferred first
        self.accepts: Dict[str, Callable[..., bool]] = {}

    def register(self, name: str, fn: Callable, device_types: Tuple[str, ...] = (),
                 accepts: Optional[Callable[..., bool]] = None) -> None:
        """Add ``name``; it becomes the most preferred backend on ``device_types`` for inputs ``accepts`` takes
        (default: all)."""
        self.backends[name] = fn
        if accepts is not None:
            self.accepts[name] = accepts
        for device_type in device_types:
            self.preference.setdefault(device_type, []).insert(0, name)

    def names(self) -> List[str]:
        return sorted(self.backends)

    def pinned(self, backend: Optional[str]) -> Optional[str]:
        """The backend name an argument or the environment pins (checked), or None."""
        name = backend or os.environ.get(self.env_var) or None
        if name is not None and name not in self.backends:
            raise ValueError(f"{self.op}: unknown backend {name!r}; known: {', '.join(self.names())}")
        return name

    def preferred(self, device_type: str, *args, skip: Iterable[str] = ()) -> Callable:
        """The first backend preferred on ``device_type`` that accepts ``args`` (``skip``: names to pass over)."""
        for name in self.preference.get(device_type, []):
            if name not in skip and self.accepts.get(name, lambda *a: True)(*args):
                return self.backends[name]
        return self.default

    def resolve(self, backend: Optional[str], device_type: str, *args) -> Callable:
        name = self.pinned(backend)
        return self.backends[name] if name is not None else self.preferred(device_type, *args)

    def copy(self) -> 'BackendRegistry':
        """An independent registry with the same entries (tests register throw-away backends on a copy)."""
        other = BackendRegistry(self.op, self.env_var, self.backends, self.default)
        other.preference = {k: list(v) for k, v in self.preference.items()}
        other.accepts = dict(self.accepts)
        return other
