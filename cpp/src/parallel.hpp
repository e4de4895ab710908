// One thread pool for the process. Workers are started once, on first use, and live until
// exit; a call hands its parts to them and works on its own parts too, so a call made while
// another runs (from another thread, or nested inside a part) never waits for a free worker.
// Results never depend on the thread count: callers split work into parts whose results are
// written to disjoint places and combined in a fixed order.
#pragma once

#include <cstdint>
#include <functional>

namespace tsviz {

// Threads the engine uses: TSVIZ_NUM_THREADS, else the processor count (at most 8). Read once.
int engine_threads();

// Calls f(part) for every part in [0, parts), on the pool and the calling thread; returns when
// all are done and rethrows the first exception a part threw.
void parallel_for(int64_t parts, const std::function<void(int64_t)>& f);

// Calls f(first, last) on up to engine_threads() disjoint ranges covering [0, n), at least
// `grain` items each (small work runs inline, on the calling thread).
void parallel_ranges(int64_t n, const std::function<void(int64_t, int64_t)>& f, int64_t grain = 1);

}  // namespace tsviz
