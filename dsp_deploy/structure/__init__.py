"""Structure IR (torch-free): per-conv groups, filter->group assignment, kept inputs per group."""
from __future__ import annotations

from dsp_deploy.structure.build import dense_structure, drop_dead_reads
from dsp_deploy.structure.flops import CostReport, LayerCost, count_costs
from dsp_deploy.structure.io import load_structure, save_structure
from dsp_deploy.structure.ir import PRUNED, SCHEMA_VERSION, ConvStructure, ModelStructure
from dsp_deploy.structure.validate import topology_for, validate_structure

__all__ = [
    "PRUNED", "SCHEMA_VERSION", "ConvStructure", "CostReport", "LayerCost", "ModelStructure", "count_costs",
    "dense_structure", "drop_dead_reads", "load_structure", "save_structure", "topology_for", "validate_structure",
]
