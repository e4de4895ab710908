#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tsviz {

namespace {

using Clock = std::chrono::steady_clock;

// How long an idle thread keeps polling before it sleeps: a worker, for the next job; a caller,
// for the workers' last parts. A thread blocked on a condition variable takes tens of
// microseconds to run again once notified (on virtual machines its processor is halted and
// must be woken), longer than many parts take: a worker woken per call then arrives after the
// caller has done every part itself, and two threads ran slower than one (a scratch measure:
// two 20 us parts took 49 us, two 50 us parts 108 us). The calls of one explanation come
// microseconds apart, so a short spin keeps the workers there for all of them; what it costs
// is this much processor time per idle spell, bounded; the polling pauses the core and yields it
// to any thread waiting to run (more threads than cores). TSVIZ_SPIN_US sets it (0: sleep at
// once), for programs that want the cores back sooner.
Clock::duration spin_time() {
    static const Clock::duration spin = [] {
        long us = 200;
        if (const char* env = std::getenv("TSVIZ_SPIN_US")) {
            char* end = nullptr;
            const long v = std::strtol(env, &end, 10);
            if (end != env && *end == '\0' && v >= 0) us = std::min(v, 100000L);
        }
        return std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us));
    }();
    return spin;
}

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Polls done() until it is true or spin_time() has passed since `since`; true if it became true.
template <class Done>
bool spin_until(Done&& done, Clock::time_point since) {
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (done()) return true;
            relax();
        }
        if (Clock::now() - since >= spin_time()) return done();
        std::this_thread::yield();  // a thread with work waiting for this core runs first
    }
}

// One call to parallel_for: parts are claimed with an atomic counter by whoever is free.
struct Job {
    const FunctionRef<void(int64_t)>* f = nullptr;
    int64_t parts = 0;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    std::mutex mutex;
    std::condition_variable finished;
    std::exception_ptr error;

    // Runs parts until none is left to claim; true when this thread finished the last one.
    void work() {
        for (int64_t p; (p = next.fetch_add(1)) < parts;) {
            try {
                (*f)(p);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex);
                if (!error) error = std::current_exception();
            }
            if (done.fetch_add(1) + 1 == parts) {
                std::lock_guard<std::mutex> lock(mutex);
                finished.notify_all();
            }
        }
    }
};

class Pool {
public:
    explicit Pool(int workers) {
        for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { loop(); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }

    void run(const std::shared_ptr<Job>& job) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            queue_.push_back(job);
            posted_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        job->work();
        if (!spin_until([&] { return job->done.load(std::memory_order_acquire) == job->parts; }, Clock::now())) {
            std::unique_lock<std::mutex> lock(job->mutex);
            job->finished.wait(lock, [&] { return job->done.load() == job->parts; });
        }
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    }

private:
    void loop() {
        Clock::time_point idle_since = Clock::now();
        for (;;) {
            std::shared_ptr<Job> job;
            uint64_t posted;
            {
                // Parts are claimed outside the lock, so the job found by the wait's test is
                // the one taken: a second look could find it drained by then.
                std::unique_lock<std::mutex> lock(mutex_);
                if (stop_) return;
                job = claimable();
                posted = posted_.load(std::memory_order_relaxed);
                if (!job && Clock::now() - idle_since >= spin_time()) {
                    wake_.wait(lock, [&] { return stop_ || (job = claimable()) != nullptr; });
                    if (stop_) return;
                }
            }
            if (job) {
                job->work();
                idle_since = Clock::now();
                continue;
            }
            // Idle for less than the spin time: poll for the next job without the lock.
            spin_until([&] { return posted_.load(std::memory_order_acquire) != posted; }, idle_since);
        }
    }
    // The oldest job with parts left to claim (under mutex_).
    std::shared_ptr<Job> claimable() const {
        for (const auto& j : queue_)
            if (j->next.load() < j->parts) return j;
        return nullptr;
    }

    std::vector<std::thread> threads_;
    std::deque<std::shared_ptr<Job>> queue_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<uint64_t> posted_{0};  // jobs queued so far: what idle workers poll
    bool stop_ = false;
};

Pool& pool() {
    // Leaked on purpose: workers must outlive every static destructor that might still call in.
    static Pool* p = new Pool(engine_threads() - 1);
    return *p;
}

}  // namespace

int engine_threads() {
    static const int threads = [] {
        if (const char* env = std::getenv("TSVIZ_NUM_THREADS")) {
            const int v = std::atoi(env);
            if (v >= 1) return std::min(v, 256);
        }
        const unsigned hw = std::thread::hardware_concurrency();
        return static_cast<int>(std::clamp(hw, 1u, 8u));
    }();
    return threads;
}

void parallel_for(int64_t parts, FunctionRef<void(int64_t)> f) {
    if (parts <= 0) return;
    if (parts == 1 || engine_threads() == 1) {
        for (int64_t p = 0; p < parts; ++p) f(p);
        return;
    }
    auto job = std::make_shared<Job>();
    job->f = &f;
    job->parts = parts;
    pool().run(job);
    if (job->error) std::rethrow_exception(job->error);
}

void parallel_ranges(int64_t n, FunctionRef<void(int64_t, int64_t)> f, int64_t grain) {
    if (n <= 0) return;
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(engine_threads(), n / std::max<int64_t>(grain, 1)));
    if (parts == 1) {
        f(0, n);
        return;
    }
    const int64_t step = (n + parts - 1) / parts;
    parallel_for(parts, [&](int64_t p) {
        const int64_t a = p * step, b = std::min(n, a + step);
        if (a < b) f(a, b);
    });
}

}  // namespace tsviz
