#!/bin/sh
# The engine's own time, one revision against another: builds the engine's static library of
# each revision (git archive into build/engine-ab/), links bench/engine_ab/engine_time.cpp
# against each, and runs the two programs in turn, one process after the other, so that both
# see the same machine; each row keeps the best minimum over the alternations (thread CPU
# time, one engine thread). The same rows a round's closing note reports:
# predict and explain of 64 windows, full analysis (explain + every filter's saliency) of 1
# and 64, on the paper net, its Keras export, the channels-last net, the residual net and the FCN.
#
#   bench/engine_ab/run.sh OLD_REV [NEW_REV] [--alternations K] [--cold] [--real]
#
# NEW_REV defaults to the working tree. --cold reads 64 MiB before every call (THRASH).
# --real times the bench's real windows (bench/engine_ab/windows.py, which needs the package
# installed) instead of random normal input: zero rows (ReLUs off along a window) depend on it.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/build/engine-ab"
old="" new="" alternations=5 real=0
while [ $# -gt 0 ]; do
    case "$1" in
        --alternations) alternations="$2"; shift ;;
        --cold) export THRASH=1 ;;
        --real) real=1 ;;
        -*) echo "usage: $0 OLD_REV [NEW_REV] [--alternations K] [--cold] [--real]" >&2; exit 2 ;;
        *) if [ -z "$old" ]; then old="$1"; else new="$1"; fi ;;
    esac
    shift
done
[ -n "$old" ] || { echo "usage: $0 OLD_REV [NEW_REV] [--alternations K] [--cold] [--real]" >&2; exit 2; }

generator=""
if command -v ninja >/dev/null 2>&1; then generator="-G Ninja"; fi

# build NAME REV: the library of REV (empty: the working tree) and the timing program. Each
# revision has its own source and build folders, named by its commit: git archive stamps every
# file with the commit's time, so a folder shared between revisions kept the objects of a later
# one when an earlier one was extracted over it (they looked newer than the sources).
build() {
    if [ -n "$2" ]; then
        sha=$(git -C "$root" rev-parse --short=12 "$2^{commit}")
        src="$work/src-$sha" dir="$work/build-$sha"
        if [ ! -f "$src/CMakeLists.txt" ]; then
            rm -rf "$src" && mkdir -p "$src"
            git -C "$root" archive "$sha" | tar -x -C "$src"
        fi
    else
        src="$root" dir="$work/tree-build"  # the working tree: real file times, incremental
    fi
    # shellcheck disable=SC2086
    cmake -S "$src" -B "$dir" $generator -DCMAKE_BUILD_TYPE=Release -DTSVIZ_BUILD_PYTHON=OFF \
        -DTSVIZ_BUILD_TESTS=OFF > /dev/null
    cmake --build "$dir" --target tsviz > /dev/null
    lib=$(find "$dir" -name libtsviz.a | head -n 1)
    "${CXX:-c++}" -O2 -std=c++17 -I"$src/cpp/include" "$root/bench/engine_ab/engine_time.cpp" "$lib" -lpthread \
        -o "$work/$1-engine_time"
}
mkdir -p "$work"
build old "$old"
build new "$new"

models="$root/tests/models"
if [ "$real" = 1 ]; then
    (cd "$work" && python3 "$root/bench/engine_ab/windows.py" "$work/windows")
fi
echo "| model | windows | work | $old (ms) | ${new:-working tree} (ms) | new / old |"
echo "|---|---|---|---|---|---|"
for net in paper_net_op17 keras_paper_net_op17 channels_last_op17 resnet_op17 fcn_op17; do
    for row in "64 predict 60" "64 explain 60" "1 full 200" "64 full 10"; do
        set -- $row
        best_old=999999 best_new=999999
        i=0
        while [ "$i" -lt "$alternations" ]; do
            if [ "$real" = 1 ]; then export WINDOWS="$work/windows/$net.bin"; fi
            a=$(TSVIZ_NUM_THREADS=1 "$work/old-engine_time" "$models/$net.onnx" "$1" "$2" "$3" | awk '{print $2}')
            b=$(TSVIZ_NUM_THREADS=1 "$work/new-engine_time" "$models/$net.onnx" "$1" "$2" "$3" | awk '{print $2}')
            best_old=$(echo "$best_old $a" | awk '{print ($2 < $1) ? $2 : $1}')
            best_new=$(echo "$best_new $b" | awk '{print ($2 < $1) ? $2 : $1}')
            i=$((i + 1))
        done
        echo "$net $1 $2 $best_old $best_new" | awk '{printf "| %s | %s | %s | %.3f | %.3f | %.2f |\n", $1, $2, $3, $4, $5, $5 / $4}'
    done
done
