#!/bin/sh
# The engine's own time, one revision against another: builds the engine's static library of
# each revision (git archive into build/engine-ab/), links bench/engine_ab/engine_time.cpp
# against each, and runs the two programs in turn, one process after the other, so that both
# see the same machine; each row keeps the best minimum over the alternations (thread CPU
# time, one engine thread). The same rows a round's closing note reports:
# predict and explain of 64 windows, full analysis (explain + every filter's saliency) of 1
# and 64, on the paper net, its Keras export, the channels-last net, the residual net and the FCN.
#
#   bench/engine_ab/run.sh OLD_REV [NEW_REV] [--alternations K] [--cold] [--real] [--one-process [--rounds R]]
#
# NEW_REV defaults to the working tree. --cold reads 64 MiB before every call (THRASH).
# --real times the bench's real windows (bench/engine_ab/windows.py, which needs the package
# installed) instead of random normal input: zero rows (ReLUs off along a window) depend on it.
# --one-process builds each revision as a shared object (engine_shim.cpp, position-independent)
# and loads both into one program (engine_pair.cpp) that alternates them in R rounds (default
# 30): each row then gives the median and quartiles of the per-round ratio, which a machine
# slowing down for a while (other tenants on a shared host) moves far less than the best
# times of two programs run one after the other.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/build/engine-ab"
old="" new="" alternations=5 real=0 one=0 rounds=30
usage="usage: $0 OLD_REV [NEW_REV] [--alternations K] [--cold] [--real] [--one-process [--rounds R]]"
while [ $# -gt 0 ]; do
    case "$1" in
        --alternations) alternations="$2"; shift ;;
        --cold) export THRASH=1 ;;
        --real) real=1 ;;
        --one-process) one=1 ;;
        --rounds) rounds="$2"; shift ;;
        -*) echo "$usage" >&2; exit 2 ;;
        *) if [ -z "$old" ]; then old="$1"; else new="$1"; fi ;;
    esac
    shift
done
[ -n "$old" ] || { echo "$usage" >&2; exit 2; }
if [ "$one" = 1 ] && [ -n "${THRASH:-}" ]; then echo "$0: --cold is for the two-program runs" >&2; exit 2; fi

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
    pic=""
    if [ "$one" = 1 ]; then dir="$dir-pic" pic="-DCMAKE_POSITION_INDEPENDENT_CODE=ON"; fi
    # shellcheck disable=SC2086
    cmake -S "$src" -B "$dir" $generator -DCMAKE_BUILD_TYPE=Release -DTSVIZ_BUILD_PYTHON=OFF \
        -DTSVIZ_BUILD_TESTS=OFF $pic > /dev/null
    cmake --build "$dir" --target tsviz > /dev/null
    lib=$(find "$dir" -name libtsviz.a | head -n 1)
    if [ "$one" = 1 ]; then
        # The engine's symbols kept inside the object, so that the two revisions do not meet.
        "${CXX:-c++}" -O2 -std=c++17 -fPIC -shared -I"$src/cpp/include" "$root/bench/engine_ab/engine_shim.cpp" \
            "$lib" -Wl,--exclude-libs,ALL -Wl,-Bsymbolic -lpthread -o "$work/$1-engine.so"
    else
        "${CXX:-c++}" -O2 -std=c++17 -I"$src/cpp/include" "$root/bench/engine_ab/engine_time.cpp" \
            "$root/bench/engine_ab/engine_shim.cpp" "$lib" -lpthread -o "$work/$1-engine_time"
    fi
}
mkdir -p "$work"
build old "$old"
build new "$new"
if [ "$one" = 1 ]; then
    "${CXX:-c++}" -O2 -std=c++17 "$root/bench/engine_ab/engine_pair.cpp" -ldl -o "$work/engine_pair"
fi

models="$root/tests/models"
if [ "$real" = 1 ]; then
    (cd "$work" && python3 "$root/bench/engine_ab/windows.py" "$work/windows")
fi
if [ "$one" = 1 ]; then
    echo "| model | windows | work | $old (ms) | ${new:-working tree} (ms) | new / old, median of $rounds rounds (quartiles) |"
else
    echo "| model | windows | work | $old (ms) | ${new:-working tree} (ms) | new / old |"
fi
echo "|---|---|---|---|---|---|"
for net in paper_net_op17 keras_paper_net_op17 channels_last_op17 resnet_op17 fcn_op17; do
    for row in "64 predict 60" "64 explain 60" "1 full 200" "64 full 10"; do
        set -- $row
        if [ "$one" = 1 ]; then
            windows=""
            if [ "$real" = 1 ]; then windows="$work/windows/$net.bin"; fi
            # Rounds of a third of the calls a two-program run makes.
            reps=$(( $3 / 3 > 0 ? $3 / 3 : 1 ))
            # shellcheck disable=SC2086
            out=$(TSVIZ_NUM_THREADS=1 "$work/engine_pair" "$work/old-engine.so" "$work/new-engine.so" \
                "$models/$net.onnx" "$1" "$2" "$reps" "$rounds" $windows)  # set -e stops on a failure
            echo "$out" | awk -v net="$net" -v n="$1" -v w="$2" \
                '{printf "| %s | %s | %s | %.3f | %.3f | %.3f (%.3f-%.3f) |\n", net, n, w, $1, $2, $3, $4, $5}'
            continue
        fi
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
