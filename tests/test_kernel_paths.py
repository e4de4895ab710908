"""Every kernel path against the plain one, on whole models.

The engine picks its kernels once, by processor (AVX-512, AVX2 + FMA, or plain C++ loops), and
``TSVIZ_KERNELS=avx2`` or ``plain`` holds it to fewer. The plain kernels are the reference
path: every product, pooling, activation and importance sum in portable loops. Here each
committed test model's predictions, explanation (importance, Taylor criterion, output
saliency, dead filters) and the saliency of every filter of every layer are computed in a
fresh process per kernel path the processor has, on real windows, and each fast path must
agree with the plain one to float rounding (1e-4 of each array's largest value). The C++
tests check each kernel on random shapes (``cpp/tests/test_kernels.cpp``, run for every path
by ctest); this checks the paths as a user runs them: pooling, the narrow and blocked
products, the sweeps, the sums.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import MANIFEST, model_family, outputs_in_processes, real_windows


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


_FLAGS = _cpu_flags()
# The fast paths this processor runs ("" = the processor's best: AVX-512 where it has it).
_FAST = {}
if {"avx2", "fma"} <= _FLAGS:
    _FAST["avx2"] = {"TSVIZ_KERNELS": "avx2"}
if "avx512f" in _FLAGS:
    _FAST["avx512"] = {"TSVIZ_KERNELS": ""}

# One export of every committed model family.
_MODELS = sorted({model_family(n): n for n in sorted(MANIFEST) if not n.endswith("_bn")}.values())

_SCRIPT = """
import sys
import numpy as np
import tsviz_native as tsv
inputs = np.load(sys.argv[1])
out = {}
for key in inputs.files:
    x = inputs[key]
    model = tsv.load(sys.argv[2] + "/" + key)
    out[key + ":predict"] = model.predict(x)
    ex = model.explain(x)
    out[key + ":output_saliency"] = ex.output_saliency
    for name in ex.layer_names:
        out[key + ":importance_raw:" + name] = ex.importance_raw[name]
        out[key + ":taylor:" + name] = ex.taylor[name]
        out[key + ":saliency:" + name] = ex.saliency(name)
        # dead filters, from each path's own importance pass: the rule on its activations
        out[key + ":dead is the rule:" + name] = np.float32(
            np.array_equal(ex.dead[name], ~np.any(ex.activations[name] != 0, axis=-1)))
np.savez(sys.argv[3], **out)
"""


@pytest.mark.skipif(not _FAST, reason="this processor has only the plain kernels")
def test_every_kernel_path_matches_the_plain_one(tmp_path) -> None:
    inputs = {}
    for name in _MODELS:
        info = MANIFEST[name]
        inputs[info["file"]] = real_windows(tuple(info["input_shape"]), info["layout"], 3, seed=7)
    envs = {"plain": {"TSVIZ_KERNELS": "plain"}, **_FAST}
    results = outputs_in_processes(tmp_path, _SCRIPT, inputs, envs)
    plain = results["plain"]
    assert len(plain.files) > 3 * len(_MODELS)
    assert all(plain[key] == 1 for key in plain.files if ":dead is the rule:" in key)
    for path in _FAST:
        fast = results[path]
        assert sorted(fast.files) == sorted(plain.files)
        for key in plain.files:
            want, got = plain[key], fast[key]
            assert got.shape == want.shape, f"{path}, {key}"
            scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
            err = float(np.abs(got - want).max(initial=0.0))
            assert err <= 1e-4 * scale, f"{path} against plain, {key}: max |diff| {err:.3g} of {scale:.3g}"
