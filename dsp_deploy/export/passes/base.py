"""What every export pass is: ``check`` says why a node cannot be rewritten (None = it can),
``rewrite`` does it, ``run`` applies the pass to every node it matches and reports."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from dsp_deploy.export.graph import Graph, Node

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    """How often a pass applied, and why it did not apply elsewhere (node name -> reason)."""

    name: str
    applied: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


class Pass:
    """Base class: subclasses set ``name`` and ``ops`` and implement ``check`` and ``rewrite``."""

    name = "pass"
    ops: tuple[str, ...] = ()

    def check(self, graph: Graph, node: Node) -> str | None:
        """None if ``rewrite`` may be applied to ``node``; otherwise a short reason."""
        raise NotImplementedError

    def rewrite(self, graph: Graph, node: Node) -> None:
        raise NotImplementedError

    def matches(self, node: Node) -> bool:
        return node.op in self.ops

    def run(self, graph: Graph) -> PassResult:
        """Apply to every matching node (until nothing changes) and prune dead nodes."""
        result = PassResult(self.name)
        changed = True
        while changed:
            changed = False
            for node in list(graph.nodes):
                if node not in graph.nodes or not self.matches(node):
                    continue
                reason = self.check(graph, node)
                if reason is None:
                    self.rewrite(graph, node)
                    result.applied += 1
                    result.skipped.pop(node.name, None)
                    changed = True
                else:
                    result.skipped[node.name] = reason
        graph.prune()
        log.debug("%s: applied %d, skipped %d", self.name, result.applied, len(result.skipped))
        return result
