#!/bin/sh
# Where the engine's time goes on one model and one kind of call: builds the working tree's
# engine with frame pointers (build/engine-ab/prof-build), links engine_time against it, records
# it with `perf record -g` on one engine thread, and prints the samples' split by function and by
# op (bench/engine_ab/perf_split.py). Profile before optimising; compare the change afterwards
# with run.sh. Tail calls are kept as calls, so that each kernel's caller stays on the chain.
#
#   bench/engine_ab/profile.sh MODEL N MODE [--reps R] [--cold] [--real] [--top K] [--footprint]
#
# MODEL: a file of tests/models without .onnx (paper_net_op17, resnet_op17, ...); N windows;
# MODE predict, explain or full (explain + the saliency of every filter of every layer). R calls
# (default: about 4 s of them). --cold reads 64 MiB before every call (THRASH); --real times the
# bench's real windows (written by windows.py, which needs the package installed). perf samples
# at 20 kHz on the processor's clock, which works without hardware counters (virtual machines).
# The profile covers the whole process, loading the model included: with R calls of a few
# milliseconds or more that is a few percent ("other").
# --footprint: no perf; valgrind's callgrind on one call after two warm ones and a 256 MiB
# sweep (engine_time's FOOTPRINT mode), through bench/engine_ab/footprint.py: the code lines
# the call runs, by binary and function, the data lines it reads and writes from beyond a
# simulated last-level cache, its instructions and branches. Counts, not times: the same on a
# busy machine. Valgrind runs the AVX2 kernels (it has no AVX-512).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/build/engine-ab"
usage="usage: $0 MODEL N predict|explain|full [--reps R] [--cold] [--real] [--top K] [--footprint]"
model="" n="" mode="" reps="" real=0 top=15 footprint=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps="$2"; shift ;;
        --cold) export THRASH=1 ;;
        --real) real=1 ;;
        --top) top="$2"; shift ;;
        --footprint) footprint=1 ;;
        -*) echo "$usage" >&2; exit 2 ;;
        *) if [ -z "$model" ]; then model="$1"; elif [ -z "$n" ]; then n="$1"; else mode="$1"; fi ;;
    esac
    shift
done
[ -n "$mode" ] || { echo "$usage" >&2; exit 2; }
case "$mode" in predict|explain|full) ;; *) echo "$usage" >&2; exit 2 ;; esac
onnx="$root/tests/models/$model.onnx"
[ -f "$onnx" ] || { echo "$0: no model $onnx (name a file of tests/models without .onnx)" >&2; exit 2; }
if [ "$footprint" = 1 ]; then
    command -v valgrind >/dev/null 2>&1 || { echo "$0: valgrind is not installed" >&2; exit 2; }
else
    command -v perf >/dev/null 2>&1 || { echo "$0: perf is not installed (linux-perf, or linux-tools for your kernel)" >&2; exit 2; }
fi

generator=""
if command -v ninja >/dev/null 2>&1; then generator="-G Ninja"; fi
dir="$work/prof-build"
mkdir -p "$work"
# shellcheck disable=SC2086
cmake -S "$root" -B "$dir" $generator -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-g -fno-omit-frame-pointer -fno-optimize-sibling-calls" \
    -DTSVIZ_BUILD_PYTHON=OFF -DTSVIZ_BUILD_TESTS=OFF > /dev/null
cmake --build "$dir" --target tsviz > /dev/null
lib=$(find "$dir" -name libtsviz.a | head -n 1)
prog="$work/prof-engine_time"
"${CXX:-c++}" -O2 -g -fno-omit-frame-pointer -std=c++17 -I"$root/cpp/include" "$root/bench/engine_ab/engine_time.cpp" \
    "$root/bench/engine_ab/engine_shim.cpp" "$lib" -lpthread -o "$prog"

if [ "$real" = 1 ]; then
    (cd "$work" && python3 "$root/bench/engine_ab/windows.py" "$work/windows")
    export WINDOWS="$work/windows/$model.bin"
fi
export TSVIZ_NUM_THREADS=1
if [ "$footprint" = 1 ]; then
    out="$work/callgrind-$model-$n-$mode.out"
    FOOTPRINT=1 valgrind -q --tool=callgrind --collect-atstart=no --dump-instr=yes --branch-sim=yes --cache-sim=yes \
        --LL=67108864,16,64 --callgrind-out-file="$out" "$prog" "$onnx" "$n" "$mode" 2 > /dev/null
    echo "$model, $n windows, $mode: one call after two warm ones and a 256 MiB sweep (valgrind, AVX2 kernels)"
    python3 "$root/bench/engine_ab/footprint.py" "$out" --top "$top"
    exit 0
fi
if [ -z "$reps" ]; then  # about 4 s of calls, from the median of a short run
    ms=$("$prog" "$onnx" "$n" "$mode" 20 | awk '{print $4}')
    reps=$(echo "$ms" | awk '{r = int(4000 / ($1 > 0.001 ? $1 : 0.001)); print (r < 20) ? 20 : (r > 100000) ? 100000 : r}')
fi
data="$work/perf-$model-$n-$mode.data"
echo "$model, $n windows, $mode, $reps calls${THRASH:+, cold}: $("$prog" "$onnx" "$n" "$mode" 20)"
perf record -q -F 20000 -g -o "$data" "$prog" "$onnx" "$n" "$mode" "$reps" > /dev/null
perf script -F ip,sym -i "$data" 2> /dev/null | python3 "$root/bench/engine_ab/perf_split.py" --top "$top" --calls "$reps"
echo
echo "profile kept in $data (perf report -i $data --no-children)"
