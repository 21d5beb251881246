"""Accuracy at equal measured latency: DSP against the channel-pruning methods (`dsp-deploy
accuracy-latency`, ``bench/accuracy_latency.py``).

``settings`` sizes a run (``quick``/``full``), ``runner`` trains and caches every model (resumable) and
matches each to a latency budget with ``dsp_deploy.compare.latency_match``, ``report`` turns the
results file into results.json/.csv, report.md and plots (Pareto frontier, winner per budget),
``imagenet`` adds the labelled ImageNet estimate. Importing this package does not import torch.
"""

from __future__ import annotations

JSON_FORMAT = "dsp-deploy/accuracy-latency"
JSON_VERSION = 1
