#!/bin/sh
# The GEMM candidates benchmark: builds bench/gemm (the engine's static library from this
# checkout, and the program), runs it at 1 and 2 threads and writes the tables to
# bench/results/<UTC date>_gemm_candidates.md. See bench/README.md, "GEMM candidates".
#
#   bench/gemm/run.sh [--quick] [--spin] [--out FILE] [-- gemm_bench options]
#
# --quick: 3 rounds of ~3 ms blocks instead of 9 of ~8 ms (a smoke run).
# --spin:  leave the libraries' worker threads spinning after a call, their default. Without
#          it they wait passively, as the engine's do: the candidates take turns, and a
#          spinning thread would hold the second core through the next candidate's block.
#
# The candidates are optional; each one missing is skipped with the reason. On Debian/Ubuntu:
#   apt-get install libopenblas-dev libdnnl-dev libeigen3-dev   # OpenBLAS, oneDNN, Eigen
#   python -m pip install mkl                                     # MKL (libmkl_rt), into the
#                                                                 # environment of $PYTHON
# and numpy's wheel brings its own OpenBLAS (numpy.libs/libscipy_openblas64_*.so).
# $PYTHON (default: python3) is the interpreter whose numpy and mkl are used.
set -eu

command="bench/gemm/run.sh${*:+ $*}"
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build/gemm-bench"
out="$root/bench/results/$(date -u +%F)_gemm_candidates.md"
rounds=9
budget=8
spin=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=3; budget=3 ;;
        --spin) spin=1 ;;
        --out) out="$2"; shift ;;
        --) shift; break ;;
        *) echo "usage: $0 [--quick] [--spin] [--out FILE] [-- gemm_bench options]" >&2; exit 2 ;;
    esac
    shift
done

generator=""
if command -v ninja >/dev/null 2>&1; then generator="-G Ninja"; fi
# shellcheck disable=SC2086
cmake -S "$root/bench/gemm" -B "$build" $generator -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" >/dev/null

py=${PYTHON:-python3}
# Where pip put libmkl_rt (<prefix>/lib) and numpy's OpenBLAS; empty when absent.
mkl=$("$py" -c 'import glob, sys; print((sorted(glob.glob(sys.prefix + "/lib/libmkl_rt.so*")) + [""])[0])' 2>/dev/null || true)
numpy_blas=$("$py" -c 'import glob, os, numpy; d = os.path.dirname(os.path.dirname(numpy.__file__)); print((sorted(glob.glob(d + "/numpy.libs/libscipy_openblas*.so")) + [""])[0])' 2>/dev/null || true)

# OpenBLAS 0.3.21-0.3.31 do not know AMD's family 26 (Zen 5) and fall back to their Haswell
# (AVX2) kernels (and an OPENBLAS_CORETYPE=Haswell in the environment forces them); on a
# processor with AVX-512 their SkylakeX kernels are their best, so those are used.
coretype_before=${OPENBLAS_CORETYPE:-}
if grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
fi
if [ "$spin" = 0 ]; then
    export OMP_WAIT_POLICY=PASSIVE KMP_BLOCKTIME=0 OPENBLAS_THREAD_TIMEOUT=4
fi

tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.rc"' EXIT
{
    echo "# GEMM candidates: the engine's tap_product against BLAS libraries"
    echo
    echo "- date: $(date -u '+%F %H:%M') UTC; command: \`$command\`"
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') (family $(grep -m1 'cpu family' /proc/cpuinfo | sed 's/.*: //'), model $(grep -m1 '^model' /proc/cpuinfo | sed 's/.*: //')), $(nproc) CPUs, flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512vl|avx512_bf16)$' | tr '\n' ' ')"
    echo "- compiler: $(c++ --version | head -1)"
    echo "- environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-} (was: ${coretype_before:-unset}) OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-} KMP_BLOCKTIME=${KMP_BLOCKTIME:-} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-}"
    echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$tmp"

for t in 1 2; do
    # shellcheck disable=SC2086
    { rc=0; TSVIZ_NUM_THREADS=$t "$build/gemm_bench" --threads $t --rounds $rounds --budget-ms $budget \
        --mkl "$mkl" --openblas-numpy "$numpy_blas" "$@" || rc=$?; echo $rc > "$tmp.rc"; } | tee -a "$tmp"
    if [ "$(cat "$tmp.rc")" != 0 ]; then
        echo "gemm_bench failed at $t thread(s); nothing written to $out" >&2
        exit 1
    fi
done

{
    echo
    echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "Cells: GFLOP/s (2 M K N per call over the median time per call); in brackets candidate / engine"
    echo "(above 1: the candidate is faster). The engine gathers B from the tensors by its tap rule while"
    echo "packing; \"engine, B given\" and the libraries get B already im2col'ed, which favours them."
} >> "$tmp"
mkdir -p "$(dirname "$out")"
cp "$tmp" "$out"
echo "wrote $out"
