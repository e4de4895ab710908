// tsviz-explain MODEL.onnx WINDOW.csv
//
// Explains one window with the TSViz C++ library and prints, as JSON, the model's prediction,
// the explained output unit and the five most important filters of every filter layer:
//
//   {"model": "MODEL.onnx", "input_shape": [2, 50], "prediction": [0.123], "target": 0,
//    "layers": [{"name": "...", "op": "conv", "n_filters": 16,
//                "top_filters": [{"filter": 3, "importance": 1, "importance_raw": 0.0421}, ...]},
//               ...]}
//
// WINDOW.csv holds one window in the model's own per-sample layout, one row per line, values
// separated by commas: C rows of T values for a channels-first model (N, C, T), T rows of C
// values for a channels-last one (N, T, C) such as a Keras model, and the T values in one row
// or one column for an (N, T) model. Empty lines and lines starting with '#' are skipped.
// Numbers are printed with 9 significant digits, enough to round-trip float32.
//
// Exit status: 0 on success; 2 on a usage error, a CSV that cannot be read, or any
// tsviz::Error (the model cannot be loaded, the window does not fit it), with one line on
// stderr that says what is wrong; 1 on anything unexpected.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <tsviz/error.hpp>
#include <tsviz/explain.hpp>
#include <tsviz/model.hpp>

namespace {

constexpr size_t kTopFilters = 5;

// A CSV that cannot be used; reported like a tsviz::Error.
struct CsvError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Window {
    std::vector<float> values;  // row-major
    int64_t rows = 0;
    int64_t cols = 0;
};

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

Window read_csv(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw CsvError(path + ": cannot be opened");
    Window w;
    std::string line;
    for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
        line = trim(line);
        if (line.empty() || line[0] == '#') continue;
        int64_t cols = 0;
        size_t start = 0;
        while (true) {
            const size_t comma = line.find(',', start);
            const std::string field = trim(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            const std::string where = path + ":" + std::to_string(line_no) + ": field " + std::to_string(cols + 1);
            if (field.empty()) throw CsvError(where + " is empty");
            char* end = nullptr;
            const float v = std::strtof(field.c_str(), &end);
            if (end != field.c_str() + field.size()) throw CsvError(where + " '" + field + "' is not a number");
            if (!std::isfinite(v)) throw CsvError(where + " '" + field + "' is not a finite float32");
            w.values.push_back(v);
            ++cols;
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
        if (w.rows > 0 && cols != w.cols)
            throw CsvError(path + ":" + std::to_string(line_no) + ": " + std::to_string(cols) + " values; the rows before have " +
                           std::to_string(w.cols));
        w.cols = cols;
        ++w.rows;
    }
    if (in.bad()) throw CsvError(path + ": read error");
    if (w.rows == 0) throw CsvError(path + ": no values");
    return w;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

int run(const std::string& model_path, const std::string& csv_path) {
    const tsviz::Model model = tsviz::Model::load(model_path);
    const Window w = read_csv(csv_path);
    // (rows, cols) is the per-sample shape in the model's layout; an (N, T) model takes the
    // T values in one row or one column.
    std::vector<int64_t> shape = {w.rows, w.cols};
    if (model.input().layout == "NT") {
        if (w.rows != 1 && w.cols != 1)
            throw CsvError(csv_path + ": " + std::to_string(w.rows) + " rows of " + std::to_string(w.cols) +
                           " values; the model takes one series of T values (one row or one column)");
        shape = {w.rows * w.cols};
    }
    auto explain = [&] {
        try {
            return model.explain(w.values.data(), 1, shape);
        } catch (const tsviz::ShapeError& e) {  // name the file the window came from
            throw tsviz::ShapeError(csv_path + ": " + e.what());
        }
    };
    const tsviz::Explanation ex = explain();

    std::string out = "{\n  \"model\": " + json_string(model_path) + ",\n  \"input_shape\": [";
    for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    out += "],\n  \"prediction\": [";
    for (size_t i = 0; i < ex.output().size(); ++i) out += (i ? ", " : "") + json_number(ex.output()[i]);
    out += "],\n  \"target\": " + std::to_string(ex.target()[0]) + ",\n  \"layers\": [";
    const std::vector<tsviz::LayerInfo>& layers = model.layers();
    for (size_t li = 0; li < layers.size(); ++li) {
        const tsviz::LayerInfo& layer = layers[li];
        const std::vector<float>& imp = ex.importance(layer.name);
        const std::vector<float>& raw = ex.importance_raw(layer.name);
        // Most important first; ties by the raw importance, then by the filter index.
        std::vector<size_t> order(imp.size());
        std::iota(order.begin(), order.end(), size_t{0});
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return imp[a] != imp[b] ? imp[a] > imp[b] : raw[a] > raw[b];
        });
        order.resize(std::min(order.size(), kTopFilters));
        out += li ? ",\n    {" : "\n    {";
        out += "\"name\": " + json_string(layer.name) + ", \"op\": " + json_string(layer.op) +
               ", \"n_filters\": " + std::to_string(ex.n_filters(layer.name)) + ",\n     \"top_filters\": [";
        for (size_t k = 0; k < order.size(); ++k) {
            const size_t f = order[k];
            out += (k ? ",\n       " : "\n       ");
            out += "{\"filter\": " + std::to_string(f) + ", \"importance\": " + json_number(imp[f]) +
                   ", \"importance_raw\": " + json_number(raw[f]) + "}";
        }
        out += "]}";
    }
    out += "\n  ]\n}\n";
    std::fputs(out.c_str(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL.onnx WINDOW.csv\n", argc > 0 ? argv[0] : "tsviz-explain");
        return 2;
    }
    try {
        return run(argv[1], argv[2]);
    } catch (const tsviz::Error& e) {  // ModelError, ShapeError, ArgumentError
        std::fprintf(stderr, "tsviz-explain: %s\n", e.what());
        return 2;
    } catch (const CsvError& e) {
        std::fprintf(stderr, "tsviz-explain: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tsviz-explain: unexpected error: %s\n", e.what());
        return 1;
    }
}
