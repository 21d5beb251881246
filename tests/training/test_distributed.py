"""train -> prune -> finetune under `torchrun --nproc_per_node 2` on CPU (gloo)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsp_deploy.checkpoint import load_checkpoint

DATA = "synthetic:64"
COMMON = ["--batch-size", "32", "--workers", "0", "--no-progress", "--epochs", "1", "--device", "cpu"]


def _torchrun(env: dict[str, str], work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dsp_deploy", *args]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_pipeline_under_torchrun(tmp_path: Path, cli, info) -> None:
    import dsp_deploy

    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(dsp_deploy.__file__).resolve().parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    _torchrun(env, tmp_path, "train", "--model", "resnet20", "--data", DATA, "--groups", "4", "--out", "RUN", *COMMON)
    run = load_checkpoint(tmp_path / "RUN" / "checkpoint.pt")
    assert run.metadata["world_size"] == 2 and run.extra["complete"]
    assert sorted(p.name for p in (tmp_path / "RUN").iterdir()) == ["checkpoint.pt", "metrics.jsonl"]

    pruned = json.loads(_torchrun(env, tmp_path, "prune", "RUN", "--flops-reduction", "0.6", "--out", "P.pt",
                                  "--json", "--no-progress").stdout)
    assert pruned["world_size"] == 2 and abs(pruned["reduction_pct"] - 60) <= 0.5  # rank 0 prints, ranks agreed

    tuned = json.loads(_torchrun(env, tmp_path, "finetune", "P.pt", "--data", DATA, "--out", "F.pt", "--json",
                                 *COMMON).stdout)
    assert tuned["world_size"] == 2
    per_rank = tuned["structure_sha256_per_rank"]
    assert len(per_rank) == 2 and len(set(per_rank)) == 1 and per_rank[0] == pruned["structure_sha256"]
    final = load_checkpoint(tmp_path / "F.pt")
    assert final.structure.layers == load_checkpoint(tmp_path / "P.pt").structure.layers
    assert final.metadata["world_size"] == 2
    assert abs(info(tmp_path / "F.pt", tmp_path)["dsp_convention"]["flops_reduction_pct"] - 60) <= 1.0
    # only rank 0 wrote files: exactly the expected set, no per-rank duplicates or temp files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["F.metrics.jsonl", "F.pt", "P.pt", "RUN"]
