// tsviz::Model: loading (file or bytes -> protobuf reader -> importer -> IR), the layer
// table, the text summary, and predict with the input-shape checks that name what is wrong.
#include "tsviz/model.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <new>
#include <stdexcept>
#include <sstream>

#include "engine.hpp"
#include "graph.hpp"
#include "model_impl.hpp"
#include "onnx/import.hpp"
#include "onnx/proto.hpp"
#include "ops/simd.hpp"

namespace tsviz {

namespace {

std::string dims_text(const std::vector<int64_t>& dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i)
        s += (i ? ", " : "") + (dims[i] < 0 ? std::string("T") : std::to_string(dims[i]));
    return s + (dims.size() == 1 ? ",)" : ")");
}

std::string bytes_text(double bytes) {
    char buf[64];
    if (bytes >= double(uint64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(uint64_t{1} << 30));
    else if (bytes >= double(1 << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / double(1 << 20));
    else std::snprintf(buf, sizeof buf, "%.0f bytes", bytes);
    return buf;
}

// Samples (T, C) of src as (C, T) in dst, for a channel count C known at compile time.
template <int64_t C>
TSVIZ_INLINE void transpose_samples_of(const float* __restrict src, float* __restrict dst, int64_t m, int64_t t) {
    for (int64_t i = 0; i < m; ++i) {
        const float* __restrict from = src + i * t * C;
        float* __restrict to = dst + i * C * t;
        for (int64_t p = 0; p < t; ++p)
            for (int64_t ch = 0; ch < C; ++ch) to[ch * t + p] = from[p * C + ch];
    }
}

// The same for C = 2, 3 or 4 (more: 4), compiled per instruction set (a function template
// cannot be multiversioned with clang).
TSVIZ_SIMD void transpose_samples(const float* __restrict src, float* __restrict dst, int64_t m, int64_t t,
                                  int64_t c) {
    switch (c) {
        case 2: return transpose_samples_of<2>(src, dst, m, t);
        case 3: return transpose_samples_of<3>(src, dst, m, t);
        default: return transpose_samples_of<4>(src, dst, m, t);
    }
}

// Activations (bytes, the whole batch) from which predict cuts a batch that fits one chunk into
// kSplitChunks (about 50 us of work on the smallest models, well above a thread's wake-up); as
// many chunks as the most threads engine_threads() gives by default. Smaller chunks cost one
// thread nothing measurable (channels_last, keras_strided, tcn, depthwise at 256 samples).
constexpr double kSplitBytes = 256 * 1024;
constexpr int64_t kSplitChunks = 8;

// The separator of a layer's label, a middle dot (UTF-8).
constexpr const char* kLabelDot = " \xc2\xb7 ";

// Lower case, runs of white space as one space, none at either end: how a label is matched.
std::string normal(const std::string& text) {
    std::string out;
    bool space = false;
    for (char ch : text) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (std::isspace(c)) {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += static_cast<char>(std::tolower(c));
    }
    return out;
}

// Bytes of the arena (and argmax cache) that m samples need at the geometry `geo`, in double
// so that no length a caller can pass overflows it.
double arena_bytes(const std::vector<ops::Resolved>& geo, int64_t m) {
    double per_sample = 0;
    for (const auto& r : geo)
        per_sample += (r.view_of >= 0 ? 0.0 : static_cast<double>(r.out.c) * static_cast<double>(r.out.l) * sizeof(float)) +
                      static_cast<double>(r.aux_per_sample) * sizeof(int32_t);
    return per_sample * static_cast<double>(m);
}

}  // namespace

void Model::Impl::note_parameters() {
    auto finite = [](const std::vector<float>& v) {
        return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
    };
    finite_parameters = std::all_of(graph.nodes.begin(), graph.nodes.end(), [&](const Node& n) {
        return finite(n.weight) && finite(n.bias) && finite(n.scale) && finite(n.shift);
    });
}

namespace {

std::shared_ptr<Model::Impl> build(Graph graph, const LoadOptions& options) {
    auto impl = std::make_shared<Model::Impl>();
    impl->max_memory = options.max_memory;
    Graph& g = impl->graph;
    g = std::move(graph);
    ops::prepare(g);
    impl->relu_fusion = fused_relus(g);
    InputInfo& in = impl->input;
    in.name = g.input_name;
    in.channels = g.input_channels;
    in.length = g.input_length;
    switch (g.layout) {
        case InputLayout::NCT: in.layout = "NCT"; in.sample_shape = {in.channels, in.length}; break;
        case InputLayout::NTC: in.layout = "NTC"; in.sample_shape = {in.length, in.channels}; break;
        case InputLayout::NT: in.layout = "NT"; in.sample_shape = {in.length}; break;
    }
    std::vector<Shape> shapes;
    if (g.input_length > 0) {
        try {
            shapes = g.infer_shapes(g.input_length);
        } catch (const ShapeError& e) {
            throw ModelError(g.source + ": " + e.what() + " (at the declared input length " +
                             std::to_string(g.input_length) + ")");
        }
        if (shapes[g.output].l != 1)
            throw ModelError(g.source + ": output '" + g.output_name + "' has " +
                             std::to_string(shapes[g.output].l) +
                             " positions per channel; TSViz explains outputs of shape (N, K)");
        const double one = arena_bytes(resolve(g, g.input_length), 1);
        if (one > static_cast<double>(options.max_memory))
            throw ModelError(g.source + ": the activations of one sample of length " +
                             std::to_string(g.input_length) + " need " + bytes_text(one) +
                             ", more than the memory limit of " +
                             bytes_text(static_cast<double>(options.max_memory)) + " (max_memory)");
    }
    impl->n_outputs = g.nodes[g.output].channels;
    impl->note_parameters();
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        impl->n_parameters += static_cast<int64_t>(n.weight.size() + n.bias.size() + n.scale.size() + n.shift.size());
        NodeInfo node;
        node.name = n.name;
        node.op = op_kind_name(n.kind);
        node.inputs.assign(n.inputs.begin(), n.inputs.end());
        node.onnx_node = n.onnx_node;
        node.onnx_op = n.onnx_op;
        node.channels = shapes.empty() ? n.channels : shapes[i].c;
        node.length = shapes.empty() ? -1 : shapes[i].l;
        node.kernel = n.kernel;
        node.stride = n.stride;
        node.dilation = n.dilation;
        node.group = n.group;
        if (n.is_filter_layer()) node.layer = static_cast<int64_t>(impl->layers.size());
        impl->nodes.push_back(std::move(node));
        if (!n.is_filter_layer()) continue;
        LayerInfo info;
        info.name = n.name;
        info.op = n.kind == OpKind::Conv ? "conv" : "dense";
        info.onnx_node = n.onnx_node;
        info.onnx_op = n.onnx_op;
        info.n_filters = n.channels;
        info.in_channels = n.kind == OpKind::Conv
                               ? static_cast<int64_t>(n.weight.size()) / n.channels / n.kernel * n.group
                               : static_cast<int64_t>(n.weight.size()) / n.channels;
        info.out_length = shapes.empty() ? -1 : shapes[i].l;
        info.kernel = n.kernel;
        info.stride = n.stride;
        info.dilation = n.dilation;
        info.group = n.group;
        info.node = static_cast<int64_t>(i);
        info.activation_node = activation_node(g, static_cast<int>(i));
        info.activation = g.nodes[info.activation_node].name;
        const int64_t number = 1 + std::count_if(impl->layers.begin(), impl->layers.end(),
                                                 [&](const LayerInfo& l) { return l.op == info.op; });
        info.label = info.op + " " + std::to_string(number) + kLabelDot;
        if (info.op == "conv")
            info.label += "k=" + std::to_string(info.kernel) + kLabelDot + std::to_string(info.n_filters) + " filters";
        else
            info.label += std::to_string(info.n_filters) + (info.n_filters == 1 ? " unit" : " units");
        impl->layers.push_back(info);
        impl->layer_names.push_back(info.name);
    }
    return impl;
}

// Loading allocates only what the checks allowed, but should the system still refuse memory,
// that is the model's failure to load, named as such rather than a bare std::bad_alloc.
template <class F>
auto guarded(const std::string& source, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const std::bad_alloc&) {
        throw ModelError(source + ": out of memory while loading the model");
    } catch (const std::length_error&) {
        throw ModelError(source + ": out of memory while loading the model");
    }
}

std::string base_name(const std::string& path) {
    return std::filesystem::path(path).filename().string();
}

}  // namespace

size_t find_layer(const std::vector<LayerInfo>& layers, const std::string& key) {
    for (size_t i = 0; i < layers.size(); ++i)
        if (layers[i].name == key) return i;
    const std::string wanted = normal(key);
    for (size_t i = 0; i < layers.size(); ++i) {
        const std::string& label = layers[i].label;
        if (wanted == normal(label) || wanted == normal(label.substr(0, label.find(kLabelDot)))) return i;
    }
    const int64_t n = static_cast<int64_t>(layers.size());
    std::string what = "named '" + key + "'";
    const std::string digits = normal(key);
    const size_t first = !digits.empty() && digits[0] == '-' ? 1 : 0;
    if (digits.size() > first && digits.find_first_not_of("0123456789", first) == std::string::npos) {
        // more digits than an int64 holds: out of range whatever the model
        const size_t lead = std::min(digits.find_first_not_of('0', first), digits.size() - 1);
        const std::string magnitude = digits.substr(lead);
        if (magnitude.size() <= 18) {
            int64_t index = std::stoll(magnitude);
            if (first) index = -index;
            if (-n <= index && index < n) return static_cast<size_t>(index < 0 ? index + n : index);
            what = "with index " + std::to_string(index);
        } else {
            what = "with index " + std::string(first && magnitude != "0" ? "-" : "") + magnitude;
        }
    }
    std::string listing;
    for (size_t i = 0; i < layers.size(); ++i)
        listing += (i ? "; " : "") + std::to_string(i) + " = '" + layers[i].label + "' ('" + layers[i].name + "')";
    throw ArgumentError("no filter layer " + what + "; give a number 0.." + std::to_string(n - 1) +
                        ", a label or a tensor name: " + listing);
}

Model Model::load(const std::string& path, const LoadOptions& options) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(path, ec)) throw ModelError(path + ": no such file");
    if (fs::is_directory(path, ec)) throw ModelError(path + ": is a folder, not an ONNX file");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ModelError(path + ": cannot be opened");
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw ModelError(path + ": read error");
    const std::string source = base_name(path);
    onnx::ModelProto proto = guarded(source, [&] {
        return onnx::parse_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), source);
    });
    std::string dir = fs::absolute(fs::path(path), ec).parent_path().string();
    Model m;
    m.impl_ = guarded(source, [&] { return build(onnx::import_model(proto, source, dir, options.max_memory), options); });
    return m;
}

Model Model::from_bytes(const void* data, size_t size, const std::string& source, const LoadOptions& options) {
    Model m;
    m.impl_ = guarded(source, [&] {
        onnx::ModelProto proto = onnx::parse_model(static_cast<const uint8_t*>(data), size, source);
        return build(onnx::import_model(proto, source, "", options.max_memory), options);
    });
    return m;
}

const InputInfo& Model::input() const { return impl_->input; }
const std::string& Model::output_name() const { return impl_->graph.output_name; }
int64_t Model::n_outputs() const { return impl_->n_outputs; }
const std::vector<LayerInfo>& Model::layers() const { return impl_->layers; }
const LayerInfo& Model::layer(const std::string& key) const { return impl_->layers[find_layer(impl_->layers, key)]; }
int64_t Model::opset() const { return impl_->graph.opset; }
const std::string& Model::producer() const { return impl_->graph.producer; }
const std::string& Model::source() const { return impl_->graph.source; }
int64_t Model::n_parameters() const { return impl_->n_parameters; }
const std::vector<NodeInfo>& Model::nodes() const { return impl_->nodes; }

std::string Model::summary() const {
    const Graph& g = impl_->graph;
    const InputInfo& in = impl_->input;
    std::ostringstream s;
    int conv = 0, pool = 0, dense = 0;
    for (const NodeInfo& n : impl_->nodes) {
        if (n.op == "Conv") ++conv;
        if (n.op == "Dense") ++dense;
        if (n.op == "MaxPool" || n.op == "AvgPool" || n.op == "GlobalAvgPool" || n.op == "GlobalMaxPool") ++pool;
    }
    s << "model   " << g.source << " (opset " << g.opset;
    if (!g.producer.empty()) s << ", from " << g.producer;
    s << ")\n";
    std::vector<int64_t> shown = in.sample_shape;
    s << "input   '" << in.name << "' (N, " << dims_text(shown).substr(1) << " "
      << (in.layout == "NTC" ? "channels-last" : "channels-first") << ": " << in.channels
      << (in.channels == 1 ? " channel" : " channels") << " x "
      << (in.length > 0 ? std::to_string(in.length) : std::string("any number of")) << " steps\n";
    s << "output  '" << g.output_name << "' (N, " << impl_->n_outputs << ")\n";
    s << "layers  " << conv << " convolution, " << pool << " pooling, " << dense << " dense; "
      << n_parameters() << " parameters\n\n";
    char line[256];
    std::snprintf(line, sizeof line, "  %-4s %-13s %-36s %10s  %s\n", "#", "op", "output tensor", "shape", "details");
    s << line;
    for (size_t i = 1; i < impl_->nodes.size(); ++i) {
        const NodeInfo& n = impl_->nodes[i];
        std::string shape = "(" + std::to_string(n.channels) + ", " +
                            (n.length < 0 ? std::string("?") : std::to_string(n.length)) + ")";
        std::string details;
        if (n.op == "Conv" || n.op == "MaxPool" || n.op == "AvgPool") {
            details = "k=" + std::to_string(n.kernel) + " s=" + std::to_string(n.stride) +
                      " d=" + std::to_string(n.dilation);
            if (n.group > 1) details += " groups=" + std::to_string(n.group);
        }
        if (n.is_filter_layer()) details += std::string(details.empty() ? "" : " ") + "[filter layer]";
        std::string name = n.name.size() > 36 ? "..." + n.name.substr(n.name.size() - 33) : n.name;
        std::snprintf(line, sizeof line, "  %-4zu %-13s %-36s %10s  %s\n", i, n.op.c_str(),
                      name.c_str(), shape.c_str(), details.c_str());
        s << line;
    }
    return s.str();
}

int64_t Model::Impl::check_input(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                                 bool allow_nonfinite) const {
    if (n == 0) throw ArgumentError("the batch is empty (0 samples); give at least one sample");
    if (n < 0) throw ArgumentError("batch size must be >= 1, got " + std::to_string(n));
    if (x == nullptr) throw ArgumentError("the input pointer is null");
    auto fail = [&](const std::string& why) {
        throw ShapeError("input has per-sample shape " + dims_text(sample_shape) +
                         "; the model expects " + dims_text(input.sample_shape) + why);
    };
    if (sample_shape.size() != input.sample_shape.size()) fail("");
    const int64_t c = input.layout == "NTC" ? sample_shape[1] : (input.layout == "NT" ? 1 : sample_shape[0]);
    const int64_t t = input.layout == "NTC" ? sample_shape[0] : sample_shape.back();
    if (c != input.channels || t < 1) fail("");
    if (t > std::numeric_limits<int32_t>::max())
        fail(" (a length above " + std::to_string(std::numeric_limits<int32_t>::max()) + " is not supported)");
    std::shared_ptr<const std::vector<ops::Resolved>> geo;
    try {
        geo = geometry(t);
    } catch (const ShapeError& e) {
        fail(std::string(" (") + e.what() + ")");
    }
    const int64_t out_len = (*geo)[graph.output].out.l;
    if (out_len != 1) fail(" (at this length the output has " + std::to_string(out_len) + " positions)");
    // The declared shape is the model's contract (ONNX Runtime refuses anything else): a
    // fixed length must match even where the graph could run at another one.
    if (input.length > 0 && t != input.length)
        fail(" (input '" + input.name + "' declares (N, " + dims_text(input.sample_shape).substr(1) +
             "; its length is fixed)");
    if (!allow_nonfinite) {
        // SPEC: a NaN or infinity would give a plausible-looking but meaningless explanation
        // (max-pooling and ReLU can hide it), so it is refused unless asked for.
        const int64_t per = c * t;
        // One pass that vectorises (an OR over ints, no early exit) finds whether there is
        // anything to report; the scan that names it runs only then.
        int bad = 0;
        for (int64_t j = 0; j < n * per; ++j)
            bad |= static_cast<int>(!(std::fabs(x[j]) <= std::numeric_limits<float>::max()));
        for (int64_t i = 0; bad && i < n; ++i) {
            const float* s = x + i * per;
            for (int64_t j = 0; j < per; ++j) {
                if (std::isfinite(s[j])) continue;
                std::string at = "(";
                if (sample_shape.size() == 2)
                    at += std::to_string(j / sample_shape[1]) + ", " + std::to_string(j % sample_shape[1]);
                else
                    at += std::to_string(j) + ",";
                at += ")";
                throw ArgumentError("input sample " + std::to_string(i) + " has " +
                                    (std::isnan(s[j]) ? "NaN" : s[j] > 0 ? "+inf" : "-inf") +
                                    " at position " + at + " of its per-sample shape " +
                                    dims_text(sample_shape) +
                                    "; pass allow_nonfinite to compute with it (IEEE: NaN in, NaN out)");
            }
        }
    }
    return t;
}

void Model::Impl::check_memory(int64_t m, int64_t t) const {
    const double need = arena_bytes(*geometry(t), m);
    if (need > static_cast<double>(max_memory))
        throw ArgumentError(std::to_string(m) + (m == 1 ? " sample" : " samples") + " of length " +
                            std::to_string(t) + " need " + bytes_text(need) +
                            " of activations, more than the memory limit of " +
                            bytes_text(static_cast<double>(max_memory)) +
                            " (max_memory); pass fewer samples at once");
}

void Model::Impl::fill_input(Activations& act, const float* x, int64_t start, int64_t m, int64_t t) const {
    const int64_t c = input.channels;
    float* dst = act.arena.data() + act.offset[0];
    const float* src = x + start * c * t;
    if (input.layout == "NTC" && c > 1 && c <= 4) {
        // Few channels: the channel count known to the compiler, so that a sample's rows are read
        // once, in order, and the vectoriser deinterleaves them.
        transpose_samples(src, dst, m, t, c);
    } else if (input.layout == "NTC" && c > 1) {
        // Channel by channel, so that the writes are contiguous.
        for (int64_t i = 0; i < m; ++i)
            for (int64_t ch = 0; ch < c; ++ch) {
                const float* __restrict from = src + i * t * c + ch;
                float* __restrict to = dst + (i * c + ch) * t;
                for (int64_t p = 0; p < t; ++p) to[p] = from[p * c];
            }
    } else {
        std::copy(src, src + m * c * t, dst);
    }
}

FloatArena Model::Impl::take_arena() const {
    std::lock_guard<std::mutex> lock(arena_mutex);
    return std::move(spare_arena);
}

void Model::Impl::give_arena(FloatArena&& arena) const {
    std::lock_guard<std::mutex> lock(arena_mutex);
    if (arena.capacity() > spare_arena.capacity()) spare_arena = std::move(arena);
}

std::vector<float> Model::Impl::take_block(size_t n) const {
    std::lock_guard<std::mutex> lock(arena_mutex);
    auto best = spare_blocks.end();
    for (auto it = spare_blocks.begin(); it != spare_blocks.end(); ++it)
        if (it->capacity() >= n && it->capacity() / 2 <= n &&
            (best == spare_blocks.end() || it->capacity() < best->capacity()))
            best = it;
    if (best == spare_blocks.end()) return {};
    std::vector<float> block = std::move(*best);
    spare_blocks.erase(best);
    return block;
}

void Model::Impl::give_block(std::vector<float>&& block) const {
    // At most one block per filter layer of a full analysis, and no more bytes than the
    // model's memory limit; the oldest go first.
    constexpr size_t kSpareBlocks = 16;
    if (block.capacity() == 0) return;
    std::lock_guard<std::mutex> lock(arena_mutex);
    spare_blocks.push_back(std::move(block));
    uint64_t kept = 0;
    for (const auto& b : spare_blocks) kept += b.capacity() * sizeof(float);
    while (!spare_blocks.empty() && (spare_blocks.size() > kSpareBlocks || kept > max_memory)) {
        kept -= spare_blocks.front().capacity() * sizeof(float);
        spare_blocks.erase(spare_blocks.begin());
    }
}

std::shared_ptr<const std::vector<ops::Resolved>> Model::Impl::geometry(int64_t t) const {
    std::lock_guard<std::mutex> lock(plan_mutex);
    auto it = geometries.find(t);
    if (it != geometries.end()) return it->second;
    if (geometries.size() >= 64) geometries.clear();  // many lengths: keep memory bounded
    auto geo = std::make_shared<const std::vector<ops::Resolved>>(resolve(graph, t));
    geometries.emplace(t, geo);
    return geo;
}

std::shared_ptr<const SaliencyPlan> Model::Impl::saliency_plan(int64_t t, FunctionRef<void(SaliencyPlan&)> make) const {
    std::lock_guard<std::mutex> lock(plan_mutex);
    auto it = saliency_plans.find(t);
    if (it != saliency_plans.end()) return it->second;
    if (saliency_plans.size() >= 64) saliency_plans.clear();  // many lengths: keep memory bounded
    auto plan = std::make_shared<SaliencyPlan>();
    make(*plan);
    saliency_plans.emplace(t, plan);
    return plan;
}

Activations Model::Impl::load_input(const float* x, int64_t start, int64_t m, int64_t t) const {
    check_memory(m, t);
    Activations act = allocate(*geometry(t), m, take_arena());
    fill_input(act, x, start, m, t);
    return act;
}

std::vector<float> Model::predict(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                                  const PredictOptions& options) const {
    const Graph& g = impl_->graph;
    const int64_t t = impl_->check_input(x, n, sample_shape, options.allow_nonfinite);
    const int64_t k = impl_->n_outputs;
    std::vector<float> y(static_cast<size_t>(n * k));
    if (n == 0) return y;
    // The batch runs in chunks whose tensors stay in cache (about 4 MiB each, and within the
    // memory limit; one sample over it is refused), every thread reusing one arena for its
    // chunks; the chunk size depends on the batch and the model only, never on the threads.
    impl_->check_memory(1, t);
    const auto kept_geo = impl_->geometry(t);
    const std::vector<ops::Resolved>& geo = *kept_geo;
    const double per_sample = std::max(arena_bytes(geo, 1), 1.0);
    const double budget = std::min(static_cast<double>(int64_t{4} << 20), static_cast<double>(impl_->max_memory));
    int64_t chunk = std::clamp<int64_t>(static_cast<int64_t>(budget / per_sample), 1, n);
    // A batch that fits one chunk would run on one thread (a small model's products are too
    // small to split inside), so once its work (its tensors' size as the measure) outweighs
    // waking other threads it is cut into kSplitChunks chunks, whatever the thread count: a
    // sample's arithmetic may depend on where it lies in its chunk (a vectorised loop's scalar
    // tail), never on how many threads share the chunks.
    if (static_cast<double>(n) * per_sample >= kSplitBytes) chunk = std::min(chunk, (n + kSplitChunks - 1) / kSplitChunks);
    const std::vector<ChannelZeroing> zero = zeroing(g, geo, options.zero_filters, n);
    impl_->for_each_chunk(x, n, t, chunk, [&](Activations& act, int64_t start, int64_t m) {
        forward_samples(g, act, 0, m, zero.empty() ? nullptr : &zero, start, &impl_->relu_fusion);
        const float* out = act.arena.data() + act.offset[g.output];
        std::copy(out, out + m * k, y.begin() + start * k);
    });
    return y;
}

}  // namespace tsviz
