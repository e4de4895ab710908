#!/usr/bin/env bash
# The ThreadSanitizer check of the engine's thread safety: builds the C++ tests with
# -fsanitize=thread in build/tsan and runs the concurrency test (one Model shared by 8 threads
# calling predict, explain and saliency at once; an Explanation read by 8 threads) and the
# explanation test (the engine splits each batch over its own threads). Any data race fails
# the run (halt_on_error). The elementwise loops are built without function multiversioning:
# their ifunc resolvers run while the program is relocated, before ThreadSanitizer's runtime
# is up, and crash there. Usage: cpp/tests/run_tsan.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build/tsan}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTSVIZ_BUILD_TESTS=ON \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -DTSVIZ_NO_MULTIVERSION" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" > /dev/null
cmake --build "$build" --target test_threads test_explain
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
models=tests/models
b5m=tsviz_native/datasets/data/internet_traffic/B5M.csv
# The engine's own threads too, whatever the machine's processor count.
TSVIZ_NUM_THREADS=4 "$build/cpp/test_threads" "$models" "$b5m"
TSVIZ_NUM_THREADS=4 "$build/cpp/test_explain" "$models" "$b5m"
echo "ThreadSanitizer: no data race in test_threads and test_explain"
