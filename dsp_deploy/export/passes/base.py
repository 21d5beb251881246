"""What every export pass is: ``check`` looks at one node and returns a match (the nodes and
values the rewrite needs, bound once) or a ``NoMatch`` saying why not; ``rewrite`` consumes the
match; ``run`` applies the pass to every node it matches and reports (plan.PassResult)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.plan import PassResult

log = logging.getLogger(__name__)

__all__ = ["Match", "NoMatch", "Pass", "PassResult"]


@dataclass(frozen=True)
class NoMatch:
    """Why a pattern does not match at a node (falsy, so ``if not found: return found`` reads well)."""

    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass
class Match:
    """A pattern found at ``node`` (the anchor ``check`` was given); passes subclass it with the
    nodes and values their ``rewrite`` uses."""

    node: Node


M = TypeVar("M", bound=Match)


class Pass(Generic[M]):
    """Base class: subclasses set ``name`` and ``ops`` and implement ``check`` and ``rewrite``."""

    name = "pass"
    ops: tuple[str, ...] = ()

    def check(self, graph: Graph, node: Node) -> M | NoMatch:
        """A match ``rewrite`` may be applied to, or why ``node`` does not match."""
        raise NotImplementedError

    def rewrite(self, graph: Graph, match: M) -> None:
        """Rewrite the matched nodes (the match was checked on the graph as it is now)."""
        raise NotImplementedError

    def matches(self, node: Node) -> bool:
        return node.op in self.ops

    def run(self, graph: Graph) -> PassResult:
        """Check and rewrite every matching node (until nothing changes), prune dead nodes, report
        where the pass applied and why it did not at the other nodes of the graph it was given
        that are still there (nodes it created or rewrote itself are not skips)."""
        result = PassResult(self.name)
        given = set(graph.nodes)
        skipped: dict[str, Node] = {}
        applied: set[str] = set()
        changed = True
        while changed:
            changed = False
            for node in graph.nodes:
                if node not in graph or not self.matches(node):
                    continue
                found = self.check(graph, node)
                if isinstance(found, NoMatch):
                    if node in given and node.name not in applied:
                        result.skipped[node.name] = found.reason
                        skipped[node.name] = node
                    continue
                self.rewrite(graph, found)
                result.record(node.name)
                applied.add(node.name)
                changed = True
        graph.prune()
        result.skipped = {name: why for name, why in result.skipped.items() if skipped[name] in graph}
        log.debug("%s: applied %d, skipped %d", self.name, result.applied, len(result.skipped))
        return result
