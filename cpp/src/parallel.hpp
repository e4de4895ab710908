// One thread pool for the process. Workers are started once, on first use, and live until
// exit; a call hands its parts to them and works on its own parts too, so a call made while
// another runs (from another thread, or nested inside a part) never waits for a free worker.
// Results never depend on the thread count: callers split work into parts whose results are
// written to disjoint places and combined in a fixed order.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace tsviz {

// A callable borrowed for the length of a call, without a copy: std::function allocates for a
// lambda that captures more than two references, and the engine passes such lambdas for every
// pass of every call. The callable must outlive the FunctionRef (a lambda written in the call's
// arguments does).
template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
    FunctionRef(F&& f)  // NOLINT: converts from any callable, as std::function does
        : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* object, Args... args) -> R {
              return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
          }) {}
    R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

private:
    void* object_;
    R (*call_)(void*, Args...);
};

// Threads the engine uses: TSVIZ_NUM_THREADS, else the processor count (at most 8). Read once.
int engine_threads();

// Calls f(part) for every part in [0, parts), on the pool and the calling thread; returns when
// all are done and rethrows the first exception a part threw.
void parallel_for(int64_t parts, FunctionRef<void(int64_t)> f);

// Calls f(first, last) on up to engine_threads() disjoint ranges covering [0, n), at least
// `grain` items each (small work runs inline, on the calling thread).
void parallel_ranges(int64_t n, FunctionRef<void(int64_t, int64_t)> f, int64_t grain = 1);

}  // namespace tsviz
