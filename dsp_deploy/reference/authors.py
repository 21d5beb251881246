"""Convert an authors' DSP checkpoint (traced TorchScript, multi-branch ``Compactblock``s)
into our checkpoint: a dense CIFAR ResNet whose pruned weights are zeros plus the structure IR.

Per block (see ../shared/dsp-reference/README.md): ``sampler_a`` gathers the stream channels
each group of conv_a reads; group outputs are concatenated in group order, so concat position
p becomes our conv1 filter p (positions past the end are pruned filters). ``sampler_b`` gathers
concat positions for each group of conv_b, whose filters are written into the stream at the
``residual`` indices: those indices are our conv2 filter numbers. Index tensors are constants
baked in by tracing, read from ``code_with_constants``.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from dsp_deploy.checkpoint import Checkpoint, provenance
from dsp_deploy.errors import DSPDeployError, ModelError, ReferenceImportError
from dsp_deploy.models import get_config, topology
from dsp_deploy.structure import PRUNED, ConvStructure, ModelStructure, dense_structure, validate_structure
from dsp_deploy.utils.hashing import sha256_file, zip_damage

log = logging.getLogger(__name__)

CIFAR_WIDTHS = (16, 32, 64)


@dataclass
class _Branch:
    """One group of a packed conv: its gathered indices, conv weight and BN parameters."""

    read: list[int]
    weight: torch.Tensor
    bn: dict[str, torch.Tensor]


def _child(module: Any, name: str, where: str) -> Any:
    try:
        return getattr(module, name)
    except AttributeError:
        raise ReferenceImportError(f"expected a '{name}' submodule", layer=where) from None


def _constant_map(module: Any, where: str) -> dict[str, list[int]]:
    """The index constants (c0, c1, ...) a traced module baked in, by name."""
    try:
        mapping = module.code_with_constants[1].const_mapping
        return {k: v.reshape(-1).tolist() for k, v in mapping.items()}
    except Exception as exc:  # noqa: BLE001 - scripted internals differ across torch versions
        raise ReferenceImportError(f"cannot read index constants ({exc})", layer=where) from None


_GATHER = re.compile(r"(\w+) = torch\.take_along_dim\(\w+, CONSTANTS\.(c\d+), 1\)")
_RETURN = re.compile(r"return \(?([\w, ]+?)\)?\s*$", re.M)
_IADD = re.compile(r"index_add_\(\w+, 1, CONSTANTS\.(c\d+), argument_(\d+)\)")


def _sampler_indices(module: Any, where: str) -> list[list[int]]:
    """Per output of a sampler, in output order, the channels it gathers. Tracing shares one
    constant between groups with equal indices, so the code is read, not the constant list."""
    constants = _constant_map(module, where)
    code = module.code
    gathered = dict(_GATHER.findall(code))
    returned = _RETURN.search(code)
    if not gathered or not returned:
        raise ReferenceImportError("not a take_along_dim sampler", layer=where)
    names = [n.strip() for n in returned.group(1).split(",") if n.strip()]
    try:
        return [constants[gathered[n]] for n in names]
    except KeyError as exc:
        raise ReferenceImportError(f"output {exc} is not a gather of a constant", layer=where) from None


def _residual_indices(module: Any, where: str) -> list[list[int]]:
    """Per added branch (argument_2, argument_3, ...), the stream channels it is added into."""
    constants = _constant_map(module, where)
    adds = sorted((int(arg), const) for const, arg in _IADD.findall(module.code))
    if not adds or [a for a, _ in adds] != list(range(2, 2 + len(adds))):
        raise ReferenceImportError("not an index_add residual of the branches", layer=where)
    return [constants[const] for _, const in adds]


def _bn_tensors(bn: Any) -> dict[str, torch.Tensor]:
    return {k: getattr(bn, k).detach().clone() for k in ("weight", "bias", "running_mean", "running_var")}


def _branches(block: Any, which: str, sampler_name: str, where: str) -> list[_Branch]:
    layers = _child(block, f"layers_{which}", where)
    reads = _sampler_indices(_child(block, sampler_name, where), f"{where}.{sampler_name}")
    count = len(list(layers.children()))
    if count != len(reads):
        raise ReferenceImportError(f"{count} branches but {len(reads)} gather index sets",
                                   layer=f"{where}.layers_{which}")
    branches = []
    for k in range(count):
        seq = getattr(layers, str(k))
        conv, bn = getattr(seq, "0"), getattr(seq, "1")
        weight = conv.weight.detach().clone()
        if getattr(conv, "bias", None) is not None:
            raise ReferenceImportError("conv with bias is not part of the DSP layout",
                                       layer=f"{where}.layers_{which}.{k}")
        if weight.shape[1] != len(reads[k]):
            raise ReferenceImportError(f"conv reads {weight.shape[1]} channels but gathers {len(reads[k])}",
                                       layer=f"{where}.layers_{which}.{k}")
        branches.append(_Branch(reads[k], weight, _bn_tensors(bn)))
    return branches


def _put_bn(state: dict[str, torch.Tensor], prefix: str, rows: list[int], bn: dict[str, torch.Tensor]) -> None:
    for key, value in bn.items():
        state[f"{prefix}.{key}"][rows] = value


def _clear_bn(state: dict[str, torch.Tensor], prefix: str, channels: int) -> None:
    state[f"{prefix}.weight"].zero_()
    state[f"{prefix}.bias"].zero_()
    state[f"{prefix}.running_mean"].zero_()
    state[f"{prefix}.running_var"].fill_(1.0)


def _import_block(block: Any, where: str, prefix: str, width: int, in_ch: int, stride: int,
                  state: dict[str, torch.Tensor]) -> tuple[ConvStructure, ConvStructure]:
    """Fill our conv1/bn1/conv2/bn2 of one basic block; return their structures."""
    branches_a = _branches(block, "a", "sampler_a", where)
    branches_b = _branches(block, "b", "sampler_b", where)
    residual = _residual_indices(_child(block, "residual", where), f"{where}.residual")
    if len(residual) != len(branches_b):
        raise ReferenceImportError(f"{len(branches_b)} conv_b branches but {len(residual)} residual index sets",
                                   layer=where)
    w1, w2 = state[f"{prefix}.conv1.weight"], state[f"{prefix}.conv2.weight"]
    w1.zero_(), w2.zero_()
    _clear_bn(state, f"{prefix}.bn1", width)
    _clear_bn(state, f"{prefix}.bn2", width)
    groups1, inputs1, position = [PRUNED] * width, [], 0
    for k, branch in enumerate(branches_a):
        n = branch.weight.shape[0]
        if position + n > width or max(branch.read, default=0) >= in_ch:
            raise ReferenceImportError(f"branch {k} does not fit a {in_ch}->{width} conv", layer=f"{where}.layers_a")
        rows = list(range(position, position + n))
        w1[rows[0]:rows[-1] + 1, branch.read] = branch.weight
        _put_bn(state, f"{prefix}.bn1", rows, branch.bn)
        groups1[position:position + n] = [k] * n
        inputs1.append(sorted(branch.read))
        position += n
    groups2, inputs2 = [PRUNED] * width, []
    for k, (branch, rows) in enumerate(zip(branches_b, residual)):
        if (len(rows) != branch.weight.shape[0] or max(rows, default=0) >= width
                or max(branch.read, default=0) >= position):
            raise ReferenceImportError(f"branch {k} does not fit the block", layer=f"{where}.layers_b")
        if any(groups2[r] != PRUNED for r in rows):
            raise ReferenceImportError("two branches write the same residual channel", layer=f"{where}.residual")
        w2[torch.tensor(rows)[:, None], torch.tensor(branch.read)[None, :]] = branch.weight
        _put_bn(state, f"{prefix}.bn2", rows, branch.bn)
        for r in rows:
            groups2[r] = k
        inputs2.append(sorted(branch.read))
    for inputs, where_ in ((inputs1, "sampler_a"), (inputs2, "sampler_b")):
        if any(len(set(i)) != len(i) for i in inputs):
            raise ReferenceImportError("a group gathers the same channel twice", layer=f"{where}.{where_}")
    return (ConvStructure(f"{prefix}.conv1", in_ch, width, 3, stride, len(inputs1), groups1, inputs1),
            ConvStructure(f"{prefix}.conv2", width, width, 3, 1, len(inputs2), groups2, inputs2))


def _copy(state: dict[str, torch.Tensor], ours: str, theirs: Any, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = getattr(theirs, key).detach()
        if tuple(value.shape) != tuple(state[f"{ours}.{key}"].shape):
            expected = tuple(state[f"{ours}.{key}"].shape)
            raise ReferenceImportError(f"has shape {tuple(value.shape)}, expected {expected} for a CIFAR ResNet",
                                       layer=f"{where}.{key}")
        state[f"{ours}.{key}"].copy_(value)


def _load_scripted(path: str) -> Any:
    if not os.path.isfile(path):
        raise ReferenceImportError(f"file not found: {path}")
    damage = zip_damage(path)
    if damage:
        raise ReferenceImportError(f"{path} is not a readable TorchScript model: {damage}")
    try:
        return torch.jit.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - not TorchScript / truncated archive
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReferenceImportError(f"{path} is not a readable TorchScript model: {first[:160]}") from None


def import_authors_checkpoint(path: str) -> Checkpoint:
    """Convert the authors' TorchScript DSP CIFAR ResNet at ``path``; depth and G are inferred."""
    scripted = _load_scripted(path)
    names = {n for n, _ in scripted.named_children()}
    needed = {"conv_1_3x3", "bn_1", "stage_1", "stage_2", "stage_3", "classifier"}
    if not needed <= names:
        raise ReferenceImportError(f"{path} is not a DSP CIFAR ResNet (missing {sorted(needed - names)})")
    stages = [getattr(scripted, f"stage_{i}") for i in (1, 2, 3)]
    counts = [len(list(s.children())) for s in stages]
    if len(set(counts)) != 1:
        raise ReferenceImportError(f"{path}: stages have {counts} blocks; a CIFAR ResNet has equal stages")
    model_name = f"resnet{6 * counts[0] + 2}"
    try:
        get_config(model_name)
    except ModelError:
        raise ReferenceImportError(f"{path}: {counts[0]} blocks per stage (depth {6 * counts[0] + 2}) "
                                   "is not a supported CIFAR ResNet") from None
    num_classes = int(scripted.classifier.weight.shape[0])
    topo = topology(model_name, num_classes)
    from dsp_deploy.models import create

    state = {k: v.clone() for k, v in create(model_name, num_classes).state_dict().items()}
    _copy(state, "conv1", scripted.conv_1_3x3, ("weight",), "conv_1_3x3")
    _copy(state, "bn1", scripted.bn_1, ("weight", "bias", "running_mean", "running_var"), "bn_1")
    _copy(state, "fc", scripted.classifier, ("weight", "bias"), "classifier")
    layers = {l.name: l for l in dense_structure(topo).layers}
    in_ch = CIFAR_WIDTHS[0]
    for s, (stage, width) in enumerate(zip(stages, CIFAR_WIDTHS), start=1):
        for b in range(counts[0]):
            where, prefix = f"stage_{s}.{b}", f"layer{s}.{b}"
            block = getattr(stage, str(b))
            stride = 2 if (s > 1 and b == 0) else 1
            if stride == 2:
                down = _child(block, "downsample", where)
                _copy(state, f"{prefix}.downsample.0", getattr(down, "0"), ("weight",), f"{where}.downsample.0")
                _copy(state, f"{prefix}.downsample.1", getattr(down, "1"),
                      ("weight", "bias", "running_mean", "running_var"), f"{where}.downsample.1")
            conv1, conv2 = _import_block(block, where, prefix, width, in_ch, stride, state)
            layers[conv1.name], layers[conv2.name] = conv1, conv2
            in_ch = width
    groups = max(l.groups for l in layers.values())
    structure = ModelStructure(model_name, num_classes, topo.input_size, tuple(layers[c.name] for c in topo.convs),
                               {"method": "dsp", "groups": groups, "source": "authors-torchscript"})
    try:
        validate_structure(structure, topo)
    except DSPDeployError as exc:
        raise ReferenceImportError(f"{path}: imported structure is inconsistent: {exc}") from None
    log.info("imported %s: %s with G=%d", path, model_name, groups)
    meta = provenance(source_file=os.path.abspath(path), source_sha256=sha256_file(path),
                      source_format="DSP authors' TorchScript (irishev/DSP)")
    return Checkpoint(model_name, state, structure, {"groups": groups}, meta)


def verify_import(path: str, checkpoint: Checkpoint, *, batch: int = 2, tolerance: float = 1e-4) -> float:
    """Max abs output difference between our model and the TorchScript original on random
    inputs; ReferenceImportError if it exceeds ``tolerance`` (nothing should then be written)."""
    from dsp_deploy.checkpoint import build_model

    scripted = _load_scripted(path)
    model = build_model(checkpoint)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, *checkpoint.structure.input_size, generator=generator)
    with torch.no_grad():
        diff = (model(inputs) - scripted(inputs)).abs().max().item()
    if not diff <= tolerance:
        raise ReferenceImportError(f"{path}: converted model differs from the original by {diff:.3g} (> {tolerance})")
    return diff
