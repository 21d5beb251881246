"""A latency table computed by hand (nothing timed): for tests of pruning to a latency budget."""
from __future__ import annotations

from dsp_deploy.hardware.latency import LatencyTable, plan_sites
from dsp_deploy.models import topology


def synthetic_table(model: str, groups: int, target, grouped_ms=None) -> LatencyTable:
    """A table computed by hand: ms = 1e-6 * ci * co * k^2 * H * W * G + 0.01 (bilinear in ci, co)."""
    topo = topology(model)
    sites = plan_sites(topo, [groups], 8)
    for site in sites.values():
        k, (h, w) = site["kernel"], site["in_hw"]
        for g, grid in site["grids"].items():

            def ms(ci, co, g=int(g)):
                if g > 1 and grouped_ms is not None:
                    return grouped_ms
                return 1e-6 * ci * co * k * k * h * w * g / site["stride"] ** 2 + 0.01

            grid["ms"] = [[ms(ci, co) for co in grid["co"]] for ci in grid["ci"]]
    return LatencyTable(model, target.to_dict(), target.cache_key(), {}, sites, {"head": 0.05})
