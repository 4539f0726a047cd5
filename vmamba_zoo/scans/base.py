"""Scan-strategy base class, the index-map record and the registry.

A strategy only has to say, for a map of size (H, W), which flat row-major pixel each of its K directions reads
at each step (``ScanStrategy.build_orders``); everything else (inverse map, coverage, validation, per-device
caching) is derived here once, so every strategy is checked the same way and every consumer sees the same data.
"""
import inspect
import operator
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Tuple, Type, Union

import torch

__all__ = ['ScanIndex', 'ScanStrategy', 'register_scan', 'get_scan', 'list_scans']


@dataclass(frozen=True, eq=False)  # eq=False: tensors make field-wise == meaningless; identity is what caching needs
class ScanIndex:
    """Index maps of one strategy at one (H, W) on one device. All tensors are contiguous int64.

    orders:   (K, S); ``orders[k, s]`` = flat row-major pixel (0 .. H*W-1) read at step s of direction k.
              ``H*W`` is the padding sentinel: that step reads zero.
    inverse:  (K, H*W); ``inverse[k, p]`` = the step at which direction k reads pixel p; ``S`` = never read.
    coverage: (H*W,); how many directions read each pixel (what ``merge(scan(x))`` multiplies x by).
    seq_len:  S.
    height, width: the map size the maps were built for.
    padded:   some step reads the sentinel (``scan`` must append a zero slot to the map).
    complete: every direction reads every pixel (``merge`` needs no zero slot).
    identity: K == 1 and the single order is plain row-major (scan/merge are reshapes).
    orders_int32: ``orders`` as contiguous int32, made once here (the GPU kernels read int32 positions: half the
              bytes per step), so a kernel launch never converts the table again.
    """
    orders: torch.Tensor
    inverse: torch.Tensor
    coverage: torch.Tensor
    seq_len: int
    height: int
    width: int
    padded: bool
    complete: bool
    identity: bool
    orders_int32: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        if self.orders.numel() >= 2 ** 31:
            raise ValueError(f'scan index: {self.orders.numel()} order entries do not fit int32 positions')
        object.__setattr__(self, 'orders_int32', self.orders.to(torch.int32).contiguous())

    @property
    def num_directions(self) -> int:
        return self.orders.shape[0]

    @property
    def sentinel(self) -> int:
        return self.height * self.width

    def to(self, device) -> 'ScanIndex':
        """The same maps on another device (flags are device-independent)."""
        move = lambda t: t.to(device).contiguous()  # noqa: E731
        return ScanIndex(move(self.orders), move(self.inverse), move(self.coverage), self.seq_len, self.height,
                         self.width, self.padded, self.complete, self.identity)

    def validate(self) -> None:
        """Check the invariants with gathers only (no transposes, no Python loops over K): cheap enough for a
        model's debug path or a new strategy's test. Raises ValueError naming the first broken invariant."""
        K, S = self.orders.shape
        HW = self.sentinel
        if self.inverse.shape != (K, HW) or self.coverage.shape != (HW,) or S != self.seq_len:
            raise ValueError(f'index shapes disagree: orders {tuple(self.orders.shape)}, inverse '
                             f'{tuple(self.inverse.shape)}, coverage {tuple(self.coverage.shape)}, seq_len {self.seq_len}')
        if (self.orders < 0).any() or (self.orders > HW).any():
            raise ValueError(f'orders must lie in 0..{HW} (H*W is the padding sentinel)')
        if (self.inverse < 0).any() or (self.inverse > S).any():
            raise ValueError(f'inverse must lie in 0..{S} (S means "not visited")')
        # Every visited pixel p: orders[k, inverse[k, p]] == p. Append the sentinel column so "not visited"
        # (inverse == S) reads the sentinel, which then must be exactly the unvisited pixels.
        orders_ext = torch.cat([self.orders, self.orders.new_full((K, 1), HW)], dim=1)
        back = orders_ext.gather(1, self.inverse)
        pixels = torch.arange(HW, device=self.orders.device).expand(K, HW)
        visited = self.inverse < S
        if not torch.equal(torch.where(visited, back, pixels), pixels) or (back[~visited] != HW).any():
            raise ValueError('orders and inverse are not inverse to each other')
        # Every real step s: inverse[k, orders[k, s]] == s (so no pixel is read twice by one direction).
        inverse_ext = torch.cat([self.inverse, self.inverse.new_full((K, 1), -1)], dim=1)
        steps = torch.arange(S, device=self.orders.device).expand(K, S)
        real = self.orders < HW
        if not torch.equal(inverse_ext.gather(1, self.orders)[real], steps[real]):
            raise ValueError('some direction reads a pixel more than once')
        if not torch.equal(visited.sum(0), self.coverage):
            raise ValueError('coverage does not count the directions that visit each pixel')
        if self.padded != bool((~real).any()) or self.complete != bool(visited.all()):
            raise ValueError('padded/complete flags disagree with the maps')


def build_scan_index(orders: torch.Tensor, H: int, W: int, name: str = '?') -> ScanIndex:
    """Derive inverse/coverage/flags from orders (K, S) on CPU, validating as we go. Runs once per (H, W), so a
    scatter here is fine; the per-call ``scan``/``merge`` only ever gather."""
    orders = torch.as_tensor(orders, dtype=torch.long).cpu().contiguous()
    HW = H * W
    if orders.dim() != 2 or orders.shape[0] < 1:
        raise ValueError(f"scan strategy '{name}' built orders of shape {tuple(orders.shape)}; expected (K, S), K >= 1")
    K, S = orders.shape
    if (orders < 0).any() or (orders > HW).any():
        raise ValueError(f"scan strategy '{name}' built orders outside 0..{HW} for a {H}x{W} map")
    # One extra column absorbs the sentinel so it needs no masking.
    counts = torch.zeros(K, HW + 1, dtype=torch.long).scatter_add_(1, orders, torch.ones_like(orders))[:, :HW]
    if (counts > 1).any():
        k = int((counts > 1).any(1).nonzero()[0])
        raise ValueError(f"scan strategy '{name}' direction {k} reads a pixel more than once at {H}x{W}")
    inverse = torch.full((K, HW + 1), S, dtype=torch.long)
    inverse.scatter_(1, orders, torch.arange(S).expand(K, S).contiguous())
    inverse = inverse[:, :HW].contiguous()
    padded = bool((orders == HW).any())
    complete = bool((counts == 1).all())
    identity = K == 1 and S == HW and torch.equal(orders[0], torch.arange(HW))
    return ScanIndex(orders, inverse, counts.sum(0).contiguous(), S, H, W, padded, complete, identity)


def _check_size(H, W) -> Tuple[int, int]:
    size = []
    for v, n in ((H, 'H'), (W, 'W')):
        try:
            if isinstance(v, bool):
                raise TypeError
            v = operator.index(v)  # ints, numpy ints, 0-d integer tensors; not floats
        except TypeError:
            raise ValueError(f'{n} must be an int, got {type(v).__name__}') from None
        if v < 1:
            raise ValueError(f'{n} must be >= 1, got {v}')
        size.append(v)
    return size[0], size[1]


class ScanStrategy:
    """A way of flattening an (H, W) map into K sequences. Subclasses set ``num_directions`` (in ``__init__`` if
    it depends on options) and implement ``build_orders``; options are keyword-only ``__init__`` arguments stored
    as attributes of the same name, so ``options()``, equality and ``repr`` come for free."""
    name: str = ''
    num_directions: int = 0
    composite: bool = False  # True for strategies made of per-resolution groups (see ``multiscale``)

    def __init__(self):
        self._cache: Dict[Tuple[int, int, torch.device], ScanIndex] = {}
        self._lock = threading.Lock()

    def _cache_state(self):
        # Created lazily too, so a subclass whose __init__ forgets super().__init__() still works.
        if '_cache' not in self.__dict__:
            self._cache = {}
        if '_lock' not in self.__dict__:
            self._lock = threading.Lock()
        return self._cache, self._lock

    # -- what subclasses provide --------------------------------------------------------------------------------
    def build_orders(self, H: int, W: int) -> torch.Tensor:
        """(K, S) int64 CPU tensor of flat pixel indices, ``H*W`` for a padding step."""
        raise NotImplementedError

    # -- derived ----------------------------------------------------------------------------------------------
    @classmethod
    def option_names(cls) -> List[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.kind is p.KEYWORD_ONLY]

    def options(self) -> dict:
        return {n: getattr(self, n) for n in self.option_names()}

    def index(self, H: int, W: int, device: Union[str, torch.device] = 'cpu') -> ScanIndex:
        """Index maps for an (H, W) map on ``device``, built once and cached per (H, W, device)."""
        if type(H) is not int or type(W) is not int or H < 1 or W < 1:
            H, W = _check_size(H, W)
        device = torch.device(device)
        key = (H, W, device)
        cache, lock = self._cache_state()
        hit = cache.get(key)
        if hit is not None:
            return hit
        # inference_mode(False): maps first built inside torch.inference_mode() must stay usable by autograd later
        # (an inference tensor cannot be saved for backward), since the cache outlives the call
        with lock, torch.inference_mode(False):
            cpu_key = (H, W, torch.device('cpu'))
            cpu = cache.get(cpu_key)
            if cpu is None:
                cpu = build_scan_index(self.build_orders(H, W), H, W, self.name)
                if cpu.num_directions != self.num_directions:
                    raise ValueError(f"scan strategy '{self.name}' built {cpu.num_directions} directions but "
                                     f'declares num_directions={self.num_directions}')
                cache[cpu_key] = cpu
            if device.type == 'cpu':
                found = cpu
            else:
                moved = cpu.to(device)
                # 'cuda' and 'cuda:0' must share one entry: key the copy by the device it really landed on.
                found = cache.setdefault((H, W, moved.orders.device), moved)
            cache[key] = found
            return found

    def __repr__(self) -> str:
        opts = ', '.join(f'{k}={v!r}' for k, v in self.options().items())
        return f'{type(self).__name__}({opts})'

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.options() == self.options()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.options().items()))))

    def __getstate__(self):  # picklable (e.g. inside a model sent to another process); the cache is rebuilt
        state = dict(self.__dict__)
        state['_cache'] = {}
        state.pop('_lock', None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


_REGISTRY: Dict[str, Type[ScanStrategy]] = {}
_INSTANCES: Dict[tuple, ScanStrategy] = {}


def register_scan(name: str):
    """Class decorator: ``@register_scan('cross') class CrossScan(ScanStrategy): ...``."""
    if not isinstance(name, str) or not name:
        raise ValueError('a scan strategy needs a non-empty string name')

    def add(cls):
        if not (isinstance(cls, type) and issubclass(cls, ScanStrategy)):
            raise TypeError(f'register_scan({name!r}) decorates ScanStrategy subclasses, got {cls!r}')
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"scan strategy '{name}' is already registered (by {_REGISTRY[name].__name__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return add


def list_scans() -> List[str]:
    return sorted(_REGISTRY)


def _instance_key(name: str, options: dict) -> tuple:
    # The type is part of the key: True == 1 and hash alike, but step=True must reach the constructor's check.
    return name, tuple(sorted((k, type(v), v) for k, v in options.items()))


def get_scan(name_or_strategy: Union[str, ScanStrategy], **options) -> ScanStrategy:
    """The strategy instance for a name (+ options), or an instance returned as is.

    Instances are shared per (name, full options), so every block of a model that asks for 'cross' uses one
    index cache.
    """
    if isinstance(name_or_strategy, ScanStrategy):
        if options:
            raise ValueError(f'options {sorted(options)} only apply when a strategy is given by name, '
                             f'not to the instance {name_or_strategy!r}')
        return name_or_strategy
    if not isinstance(name_or_strategy, str):
        raise ValueError(f'a scan strategy is a name or a ScanStrategy, got {type(name_or_strategy).__name__}')
    cls = _REGISTRY.get(name_or_strategy)
    if cls is None:
        raise ValueError(f"unknown scan strategy '{name_or_strategy}'; known: {', '.join(list_scans())}")
    allowed = cls.option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"scan strategy '{name_or_strategy}' has no option {', '.join(map(repr, unknown))}; "
                         f"its options: {', '.join(allowed) if allowed else 'none'}")
    try:
        key = _instance_key(name_or_strategy, options)
        hit = _INSTANCES.get(key)
    except TypeError:  # unhashable option value: let the constructor judge it, then cache by canonical options
        key, hit = None, None
    if hit is not None:
        return hit
    strategy = cls(**options)
    strategy = _INSTANCES.setdefault(_instance_key(name_or_strategy, strategy.options()), strategy)
    if key is not None:
        _INSTANCES[key] = strategy
    return strategy
