"""The search-space interface and its registry."""

from __future__ import annotations

import hashlib
import numbers
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from latbench._registry import Registry
from latbench.errors import ArchError
from latbench.spaces.graph import Graph

#: the most architectures :meth:`SearchSpace.enumerate_all` lists (NAS-Bench-201: 15,625)
ENUMERATE_LIMIT = 1_000_000


class SearchSpace(ABC):
    """A space of architectures, each a sequence of categorical choices.

    An architecture travels through latbench as its canonical string; ``ops(arch)`` gives the
    choice indices (one per position, into :attr:`choices`), ``from_ops`` goes back.
    """

    name: str = ""
    choices: tuple[str, ...] = ()
    num_positions: int = 0
    arch_format: str = ""  # human description of the string form, shown in errors
    # input resolutions must be a multiple of this (NB201: two stride-2 reductions whose
    # residual branches must meet at the same size)
    resolution_multiple: int = 1

    # ---- string form ------------------------------------------------------------------
    @abstractmethod
    def ops(self, arch: str) -> tuple[int, ...]:
        """Parse ``arch`` into choice indices; raise ArchError naming the bad token."""

    @abstractmethod
    def from_ops(self, ops: Sequence[int]) -> str:
        """The canonical string of the choice indices ``ops``."""

    def canonical(self, arch: str) -> str:
        return self.from_ops(self.ops(arch))

    def contains(self, arch: str) -> bool:
        try:
            self.ops(arch)
        except ArchError:
            return False
        return True

    def _check_ops(self, ops: Sequence[int]) -> tuple[int, ...]:
        try:
            items = list(ops)
        except TypeError:
            raise ArchError(
                f"{self.name}: choices {ops!r}; expected a sequence of {self.num_positions} "
                f"integers 0..{len(self.choices) - 1}"
            ) from None
        for pos, o in enumerate(items):
            # int() would truncate 2.7 to 2 and read "2": an architecture no one meant
            if type(o) is not int and (isinstance(o, bool) or not isinstance(o, numbers.Integral)):
                raise ArchError(
                    f"{self.name}: choice {o!r} at position {pos}; expected an integer "
                    f"0..{len(self.choices) - 1}"
                )
        t = tuple(int(o) for o in items)
        if len(t) != self.num_positions:
            raise ArchError(
                f"{self.name}: expected {self.num_positions} choices, got {len(t)}; "
                f"expected form: {self.arch_format}"
            )
        for pos, o in enumerate(t):
            if not 0 <= o < len(self.choices):
                raise ArchError(
                    f"{self.name}: choice {o} at position {pos} out of range "
                    f"0..{len(self.choices) - 1}"
                )
        return t

    # ---- enumeration and sampling -----------------------------------------------------
    def size(self) -> int:
        return int(len(self.choices) ** self.num_positions)

    def encode_int(self, arch: str) -> int:
        """The architecture as a base-``len(choices)`` integer (position 0 most significant)."""
        code = 0
        for o in self.ops(arch):
            code = code * len(self.choices) + o
        return code

    def decode_int(self, code: int) -> str:
        if isinstance(code, bool) or not isinstance(code, numbers.Integral):
            raise ArchError(
                f"{self.name}: code {code!r}; expected an integer in 0..{self.size() - 1}"
            )
        code = int(code)
        if not 0 <= code < self.size():
            raise ArchError(f"{self.name}: code {code} out of range 0..{self.size() - 1}")
        ops = []
        b = len(self.choices)
        for _ in range(self.num_positions):
            ops.append(code % b)
            code //= b
        return self.from_ops(ops[::-1])

    def enumerate(self) -> Iterator[str]:
        """Every architecture, in :meth:`encode_int` order (spaces may override the order)."""
        for code in range(self.size()):
            yield self.decode_int(code)

    def enumerate_all(self, limit: int = ENUMERATE_LIMIT) -> list[str]:
        """:meth:`enumerate` as a list, for spaces of at most ``limit`` architectures.

        A larger space (FBNet: 9^22) raises :class:`ArchError` instead of filling the memory;
        draw from it with :meth:`sample`.
        """
        if self.size() > limit:
            raise ArchError(
                f"{self.name} has {self.size():.3g} architectures; expected a space of at most "
                f"{limit:,} to enumerate (draw N with --sample N, or list them in --archs FILE)"
            )
        return list(self.enumerate())

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """``n`` distinct architectures drawn uniformly with ``seed``."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ArchError(f"{self.name}: cannot sample {n!r} archs; expected a count >= 0")
        n = int(n)
        if n > self.size():
            raise ArchError(
                f"{self.name}: cannot sample {n} distinct archs; expected at most "
                f"{self.size():,} (the size of the space)"
            )
        rng = random.Random(seed)
        size = self.size()
        if size <= 2**62:  # random.sample needs len(range) to fit a C ssize_t
            codes = rng.sample(range(size), n)
        else:  # huge spaces (FBNet: 9^22): rejection of the rare duplicate
            seen: set[int] = set()
            codes = []
            while len(codes) < n:
                c = rng.randrange(size)
                if c not in seen:
                    seen.add(c)
                    codes.append(c)
        return [self.decode_int(c) for c in codes]

    def random_arch(self, rng: random.Random) -> str:
        """One architecture drawn uniformly with ``rng``."""
        return self.from_ops([rng.randrange(len(self.choices)) for _ in range(self.num_positions)])

    def mutate(self, arch: str, rng: random.Random) -> str:
        """Change one position to a different choice."""
        ops = list(self.ops(arch))
        pos = rng.randrange(self.num_positions)
        ops[pos] = rng.choice([c for c in range(len(self.choices)) if c != ops[pos]])
        return self.from_ops(ops)

    def neighbours(self, arch: str) -> list[str]:
        """Every architecture that differs from ``arch`` in exactly one position."""
        ops = self.ops(arch)
        out = []
        for pos in range(self.num_positions):
            for c in range(len(self.choices)):
                if c != ops[pos]:
                    out.append(self.from_ops((*ops[:pos], c, *ops[pos + 1 :])))
        return out

    # ---- models -----------------------------------------------------------------------
    @abstractmethod
    def build(self, arch: str, batch: int = 1, resolution: int | None = None) -> Graph:
        """The architecture graph of ``arch``."""

    def input_size(self, batch: Any, resolution: Any, default: int) -> tuple[int, int]:
        """``(batch, resolution)`` for :meth:`build`, checked: a clear error rather than a
        graph with empty tensors or mismatched shapes deep inside."""
        res = default if resolution is None else resolution
        for key, value in (("batch", batch), ("resolution", res)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ArchError(f"{self.name}: {key} = {value!r}; expected an integer >= 1")
        m = self.resolution_multiple
        if res % m:
            below, above = res - res % m, res - res % m + m
            nearest = f"{below} or {above}" if below >= m else f"{above}"
            raise ArchError(
                f"{self.name}: resolution = {res}; expected a multiple of {m} (e.g. {nearest})"
            )
        return int(batch), int(res)

    def arch_id(self, arch: str) -> str:
        """A stable id of the architecture within this space (hash of space + canonical string)."""
        key = f"{self.name}:{self.canonical(arch)}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size(),
            "positions": self.num_positions,
            "choices": list(self.choices),
            "arch_format": self.arch_format,
            "doc": (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else "",
        }


SPACES: Registry[type[SearchSpace]] = Registry("spaces")


def get_space(name: str, **options: Any) -> SearchSpace:
    """Create a registered search space by name (``UnknownNameError`` lists the known ones)."""
    return SPACES.get(name)(**options)


def list_spaces(pattern: str = "*") -> list[str]:
    return SPACES.names(pattern)
