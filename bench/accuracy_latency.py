"""Accuracy at equal measured latency: DSP (G=2, G=4, latency-targeted) against L1, PFS and SCP channel
pruning on Fashion-MNIST, at 1.25x/1.5x/2x the dense model's measured speed (ONNX Runtime CPU, 1 thread;
batch 1 and 32) and at the matching FLOPs, same training budget per method; plus the labelled ResNet-50
ImageNet estimate. Writes bench/results/accuracy_latency/ (--budget full; quick: its quick/ subfolder):
results.json/.csv, report.md, PNG plots.
Every trained model is cached under --cache; a rerun resumes. Same as `dsp-deploy accuracy-latency`.

    python bench/accuracy_latency.py --budget quick     # ResNet-20, tiny subset, 1 seed: 6-9 min on 2 cores
    python bench/accuracy_latency.py --budget full      # ResNet-20 and ResNet-56, 2 seeds: 2.3-6 h, resumable
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if __name__ == "__main__":
    from dsp_deploy.cli.main import main

    sys.exit(main(["accuracy-latency", *sys.argv[1:]]))
