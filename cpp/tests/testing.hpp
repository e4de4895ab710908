// What the C++ API tests share: CHECK macros without a test framework (like test_proto.cpp),
// the committed test models and real windows of the B5M Internet traffic series (the paper's
// data: the standardised signal and its first difference). Public API only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "tsviz/error.hpp"
#include "tsviz/model.hpp"

namespace testing {

inline int g_passed = 0;
inline int g_failed = 0;

inline void record(bool ok, const char* file, int line, const std::string& what) {
    if (ok) {
        ++g_passed;
    } else {
        ++g_failed;
        std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
    }
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Prints "N passed, N failed" and returns the exit code.
inline int report(const char* name) {
    std::printf("%s: %d passed, %d failed\n", name, g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}

}  // namespace testing

#define CHECK(cond) ::testing::record(static_cast<bool>(cond), __FILE__, __LINE__, #cond)

// `expr` throws exactly `type` (not only a base of it) with a message containing `part`.
#define CHECK_THROWS(expr, type, part)                                                             \
    do {                                                                                           \
        std::string what_;                                                                         \
        bool right_ = false;                                                                       \
        try {                                                                                      \
            (void)(expr);                                                                          \
            what_ = "no exception";                                                                \
        } catch (const type& e) {                                                                  \
            right_ = ::testing::contains(e.what(), part);                                          \
            what_ = std::string(#type) + " '" + e.what() + "' lacks '" + (part) + "'";             \
        } catch (const std::exception& e) {                                                       \
            what_ = std::string("wrong exception type: ") + e.what();                              \
        }                                                                                          \
        ::testing::record(right_, __FILE__, __LINE__,                                              \
                          std::string(#expr " throws " #type ": ") + what_);                        \
    } while (0)

// |a - b| <= tol * max(1, |b|) elementwise, and equal sizes.
#define CHECK_CLOSE(a, b, tol) ::testing::record(::testing::close(a, b, tol), __FILE__, __LINE__, \
                                                 #a " close to " #b " within " #tol)

namespace testing {

inline bool close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
        if (!(d <= tol * std::max(1.0, std::fabs(static_cast<double>(b[i]))))) {
            std::fprintf(stderr, "  element %zu: %.9g vs %.9g\n", i, a[i], b[i]);
            return false;
        }
    }
    return true;
}

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "cannot open %s\n", path.c_str());
        std::exit(2);
    }
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The tests' arguments: the folder of the committed models and B5M.csv.
struct Args {
    std::string models;
    std::string b5m;
    std::string model(const std::string& name) const { return models + "/" + name + ".onnx"; }
};

inline Args args(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODELS_DIR B5M.csv\n", argv[0]);
        std::exit(2);
    }
    return {argv[1], argv[2]};
}

// The B5M series (timestamp,value), standardised with its own mean and (population) std.
inline std::vector<double> b5m_standardised(const std::string& path) {
    std::istringstream in(read_file(path));
    std::string line;
    std::getline(in, line);  // header
    std::vector<double> v;
    while (std::getline(in, line)) {
        const size_t comma = line.find(',');
        if (comma == std::string::npos) continue;
        v.push_back(std::strtod(line.c_str() + comma + 1, nullptr));
    }
    if (v.size() < 1000) {
        std::fprintf(stderr, "%s: expected the B5M series, read %zu values\n", path.c_str(), v.size());
        std::exit(2);
    }
    double mean = 0, var = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    for (double x : v) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / static_cast<double>(v.size()));
    for (double& x : v) x = (x - mean) / sd;
    return v;
}

// n windows of the series for a model, in the model's own layout: channel 0 the signal from
// `start + i * step`, channel 1 its first difference (0 at the first step), further channels
// the signal delayed by c steps. `length` is needed for models with a free T.
inline std::vector<float> windows(const tsviz::Model& model, const std::vector<double>& series, int64_t n,
                                  int64_t start, int64_t step, std::vector<int64_t>& shape, int64_t length = -1) {
    const tsviz::InputInfo& in = model.input();
    const int64_t c = in.channels, t = in.length > 0 ? in.length : length;
    const bool last = in.layout == "NTC";
    shape = in.layout == "NT" ? std::vector<int64_t>{t} : last ? std::vector<int64_t>{t, c} : std::vector<int64_t>{c, t};
    std::vector<float> x(static_cast<size_t>(n * c * t));
    for (int64_t i = 0; i < n; ++i) {
        const double* w = series.data() + start + i * step;
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t p = 0; p < t; ++p) {
                double v = ch == 1 ? (p ? w[p] - w[p - 1] : 0.0) : w[p + (ch > 1 ? ch : 0)];
                const int64_t at = last ? (i * t + p) * c + ch : (i * c + ch) * t + p;
                x[static_cast<size_t>(at)] = static_cast<float>(v);
            }
    }
    return x;
}

}  // namespace testing
