#!/usr/bin/env bash
# The GPU run of bench/gpu.py, prepared for a session whose task is lent the H200 (`device` tool).
#
# 1. Here, in the session's repo root (the checkout the device tool sends), once:
#        bash bench/gpu_run.sh prepare
#    copies the authors' ResNet-56 g=2 checkpoint (../shared does not travel) into .gpu-ref/,
#    a folder ignored through .git/info/exclude, to be carried.
# 2. The device call (one run, at most 480 s of benchmark + 90 s of GPU tests, inside the 10-minute limit):
#        run(command="bash bench/gpu_run.sh device", carry=[".gpu-ref"], timeout_s=600)
#    results come back through $OUT/gpu/: gpu.json, report.md, log.
# 3. Here: copy them into bench/results/gpu/ (the reply's files_at folder), commit with this command,
#    then quote the "Who wins" section in bench/README.md and the README's speed section.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    exclude="$(git rev-parse --git-path info/exclude)"
    grep -qx '/.gpu-ref/' "$exclude" 2>/dev/null || echo '/.gpu-ref/' >> "$exclude"
    mkdir -p .gpu-ref
    cp "${DSP_REFERENCE_DIR:-../shared/dsp-reference}/resnet56_g2.pt" .gpu-ref/
    ls -l .gpu-ref ;;
  device)
    : "${OUT:?run this through the device tool (it sets OUT)}"
    mkdir -p "$OUT/gpu"
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv | tee "$OUT/gpu/log"
    # the benchmark (compile candidates stop starting at 340 s; gpu.json/report.md saved after every phase),
    # then the GPU-only tests of the torch export (CUDA graphs + inductor on the lowered modules)
    PYTHONUNBUFFERED=1 timeout 480 python3 bench/gpu.py --reference .gpu-ref --out "$OUT/gpu" --budget-s 340 2>&1 \
      | tee -a "$OUT/gpu/log" || echo "gpu.py exit status $?" | tee -a "$OUT/gpu/log"
    PYTHONPATH=. timeout 90 python3 -m pytest -q -p no:cacheprovider tests/export/test_torch_export.py -k cuda 2>&1 \
      | tail -5 | tee -a "$OUT/gpu/log" ;;
  *)
    echo "usage: bash bench/gpu_run.sh prepare|device" >&2; exit 2 ;;
esac
