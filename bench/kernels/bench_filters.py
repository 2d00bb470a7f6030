"""Timing of the shared blur through its two heaviest users: SSIM of 8x3x256² frames and a 2-pass low-pass.

Run it on two commits to compare (the machines are noisy; compare in one sitting):
    python bench/kernels/bench_filters.py
    git worktree add /tmp/old REV && (cd /tmp/old && python bench/kernels/bench_filters.py)
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import conftest  # noqa: E402,F401  (makes `import tame` work from a checkout)
from tame.kernels.frequency import lowpass  # noqa: E402
from tame.kernels.metrics import ssim  # noqa: E402


def best_ms(function, repeats=5):
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return 1e3 * min(times)


if __name__ == "__main__":
    torch.set_num_threads(1)
    a, b = torch.rand(8, 3, 256, 256), torch.rand(8, 3, 256, 256)
    print("| operation (1 thread) | ms |\n|---|---|")
    print(f"| SSIM 8x3x256² | {best_ms(lambda: ssim(a, b)):.1f} |")
    print(f"| low-pass 8x3x256², 2 passes | {best_ms(lambda: lowpass(a, passes=2)):.1f} |")
