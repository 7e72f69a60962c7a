"""The neck's topologies as data: a node list per layer (as effdet's `fpn_config`), so BiFPN, FPN,
PAN and the C5-only ablation differ only in their lists. Plain Python that imports nothing of ours,
so that the config can take its choices of `model.neck.topology` from `TOPOLOGIES` without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    """One fusion node. `inputs` index a running list that starts with the layer's input levels and
    grows by one entry per node; `inputs[0]` is the lateral input at this node's own level."""

    level: int
    inputs: tuple[int, ...]
    attend: bool = False  # top-down node: attention from inputs[1] (coarser) modulates inputs[0]


@dataclass(frozen=True)
class Topology:
    levels: tuple[int, ...]  # the levels a layer takes in and gives out
    nodes: tuple[Node, ...]

    def entry_levels(self) -> list[int]:
        """The level of every entry of the running list."""
        return list(self.levels) + [n.level for n in self.nodes]

    def outputs(self) -> list[int]:
        """Running-list index of each level's output: its last node, or its input if no node."""
        last = {level: i for i, level in enumerate(self.entry_levels())}
        return [last[level] for level in self.levels]


def _top_down(n: int, attend: bool = True) -> list[Node]:
    """Nodes n-2 .. 0, each fusing its lateral input with the node above (the input, for the top)."""
    nodes, above = [], n - 1
    for level in range(n - 2, -1, -1):
        nodes.append(Node(level, (level, above), attend))
        above = n + len(nodes) - 1
    return nodes


def bifpn(n: int) -> Topology:
    """EfficientDet's BiFPN: top-down, then bottom-up nodes that also see the layer's own input."""
    nodes = _top_down(n)
    td = {node.level: n + i for i, node in enumerate(nodes)}  # running index of each top-down node
    below = td[0]
    for level in range(1, n):
        inputs = (level, td[level], below) if level in td else (level, below)
        nodes.append(Node(level, inputs))
        below = n + len(nodes) - 1
    return Topology(tuple(range(n)), tuple(nodes))


def fpn(n: int) -> Topology:
    """Lin et al.'s FPN: top-down only."""
    return Topology(tuple(range(n)), tuple(_top_down(n)))


def pan(n: int) -> Topology:
    """PANet: top-down, then a bottom-up path without BiFPN's skip from the layer's input."""
    nodes = _top_down(n)
    td = {node.level: n + i for i, node in enumerate(nodes)}
    below = td[0]
    for level in range(1, n):
        nodes.append(Node(level, (td.get(level, level), below)))
        below = n + len(nodes) - 1
    return Topology(tuple(range(n)), tuple(nodes))


def c5_only(n: int) -> Topology:
    """Ablation: no fusion at all; the coarsest level alone is upsampled to stride 4."""
    return Topology((n - 1,), ())


TOPOLOGIES: dict[str, Callable[[int], Topology]] = {
    "bifpn": bifpn,
    "fpn": fpn,
    "pan": pan,
    "c5_only": c5_only,
}
