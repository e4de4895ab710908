// tsviz::Model: loading (file or bytes -> protobuf reader -> importer -> IR), the layer
// table, the text summary, and predict with the input-shape checks that name what is wrong.
#include "tsviz/model.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "engine.hpp"
#include "graph.hpp"
#include "model_impl.hpp"
#include "onnx/import.hpp"
#include "onnx/proto.hpp"

namespace tsviz {

namespace {

std::string dims_text(const std::vector<int64_t>& dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i)
        s += (i ? ", " : "") + (dims[i] < 0 ? std::string("T") : std::to_string(dims[i]));
    return s + (dims.size() == 1 ? ",)" : ")");
}

std::shared_ptr<Model::Impl> build(Graph graph) {
    auto impl = std::make_shared<Model::Impl>();
    Graph& g = impl->graph;
    g = std::move(graph);
    ops::prepare(g);
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
    }
    impl->n_outputs = g.nodes[g.output].channels;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        impl->n_parameters += static_cast<int64_t>(n.weight.size() + n.bias.size() + n.scale.size() + n.shift.size());
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
        impl->layers.push_back(info);
    }
    return impl;
}

std::string base_name(const std::string& path) {
    return std::filesystem::path(path).filename().string();
}

}  // namespace

Model Model::load(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(path, ec)) throw ModelError(path + ": no such file");
    if (fs::is_directory(path, ec)) throw ModelError(path + ": is a folder, not an ONNX file");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ModelError(path + ": cannot be opened");
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw ModelError(path + ": read error");
    const std::string source = base_name(path);
    onnx::ModelProto proto = onnx::parse_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), source);
    std::string dir = fs::absolute(fs::path(path), ec).parent_path().string();
    Model m;
    m.impl_ = build(onnx::import_model(proto, source, dir));
    return m;
}

Model Model::from_bytes(const void* data, size_t size, const std::string& source) {
    onnx::ModelProto proto = onnx::parse_model(static_cast<const uint8_t*>(data), size, source);
    Model m;
    m.impl_ = build(onnx::import_model(proto, source, ""));
    return m;
}

const InputInfo& Model::input() const { return impl_->input; }
const std::string& Model::output_name() const { return impl_->graph.output_name; }
int64_t Model::n_outputs() const { return impl_->n_outputs; }
const std::vector<LayerInfo>& Model::layers() const { return impl_->layers; }
int64_t Model::opset() const { return impl_->graph.opset; }
const std::string& Model::producer() const { return impl_->graph.producer; }
const std::string& Model::source() const { return impl_->graph.source; }
int64_t Model::n_parameters() const { return impl_->n_parameters; }
const Graph& Model::graph() const { return impl_->graph; }

std::string Model::summary() const {
    const Graph& g = impl_->graph;
    const InputInfo& in = impl_->input;
    std::ostringstream s;
    int conv = 0, pool = 0, dense = 0;
    for (const Node& n : g.nodes) {
        if (n.kind == OpKind::Conv) ++conv;
        if (n.kind == OpKind::Dense) ++dense;
        if (n.kind == OpKind::MaxPool || n.kind == OpKind::AvgPool ||
            n.kind == OpKind::GlobalAvgPool || n.kind == OpKind::GlobalMaxPool)
            ++pool;
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
    std::vector<Shape> shapes;
    if (in.length > 0) shapes = g.infer_shapes(in.length);
    char line[256];
    std::snprintf(line, sizeof line, "  %-4s %-13s %-36s %10s  %s\n", "#", "op", "output tensor", "shape", "details");
    s << line;
    for (size_t i = 1; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        std::string shape = shapes.empty()
            ? "(" + std::to_string(n.channels) + ", ?)"
            : "(" + std::to_string(shapes[i].c) + ", " + std::to_string(shapes[i].l) + ")";
        std::string details;
        if (n.kind == OpKind::Conv || n.kind == OpKind::MaxPool || n.kind == OpKind::AvgPool) {
            details = "k=" + std::to_string(n.kernel) + " s=" + std::to_string(n.stride) +
                      " d=" + std::to_string(n.dilation);
            if (n.group > 1) details += " groups=" + std::to_string(n.group);
        }
        if (n.is_filter_layer()) details += std::string(details.empty() ? "" : " ") + "[filter layer]";
        std::string name = n.name.size() > 36 ? "..." + n.name.substr(n.name.size() - 33) : n.name;
        std::snprintf(line, sizeof line, "  %-4zu %-13s %-36s %10s  %s\n", i, op_kind_name(n.kind),
                      name.c_str(), shape.c_str(), details.c_str());
        s << line;
    }
    return s.str();
}

int64_t Model::Impl::check_input(const std::vector<int64_t>& sample_shape) const {
    auto fail = [&](const std::string& why) {
        throw ShapeError("input has per-sample shape " + dims_text(sample_shape) +
                         "; the model expects " + dims_text(input.sample_shape) + why);
    };
    if (sample_shape.size() != input.sample_shape.size()) fail("");
    const int64_t c = input.layout == "NTC" ? sample_shape[1] : (input.layout == "NT" ? 1 : sample_shape[0]);
    const int64_t t = input.layout == "NTC" ? sample_shape[0] : sample_shape.back();
    if (c != input.channels || t < 1) fail("");
    std::vector<ops::Resolved> geo;
    try {
        geo = resolve(graph, t);
    } catch (const ShapeError& e) {
        fail(std::string(" (") + e.what() + ")");
    }
    if (geo[graph.output].out.l != 1)
        fail(" (at this length the output has " + std::to_string(geo[graph.output].out.l) + " positions)");
    return t;
}

void Model::Impl::fill_input(Activations& act, const float* x, int64_t start, int64_t m, int64_t t) const {
    const int64_t c = input.channels;
    float* dst = act.arena.data() + act.offset[0];
    const float* src = x + start * c * t;
    if (input.layout == "NTC") {
        for (int64_t i = 0; i < m; ++i)
            for (int64_t p = 0; p < t; ++p)
                for (int64_t ch = 0; ch < c; ++ch) dst[(i * c + ch) * t + p] = src[(i * t + p) * c + ch];
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

Activations Model::Impl::load_input(const float* x, int64_t start, int64_t m, int64_t t) const {
    Activations act = allocate(graph, m, t, take_arena());
    fill_input(act, x, start, m, t);
    return act;
}

std::vector<float> Model::predict(const float* x, int64_t n, const std::vector<int64_t>& sample_shape) const {
    const Graph& g = impl_->graph;
    if (n < 0) throw ArgumentError("batch size must be >= 0, got " + std::to_string(n));
    const int64_t t = impl_->check_input(sample_shape);
    const int64_t k = impl_->n_outputs;
    std::vector<float> y(static_cast<size_t>(n * k));
    if (n == 0) return y;
    // The batch runs in chunks whose tensors stay in cache (about 4 MiB each), every thread
    // reusing one arena for its chunks; each sample's arithmetic is the same whatever the split.
    int64_t per_sample = 0;
    for (const auto& r : resolve(g, t)) per_sample += r.out.size();
    const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(per_sample, 1), 1, n);
    const int64_t chunks = (n + chunk - 1) / chunk;
    const int64_t parts = std::min<int64_t>(engine_threads(), chunks);
    parallel_for(parts, [&](int64_t part) {
        // Each thread keeps its arena between calls: a call on a small batch then allocates
        // nothing for its tensors.
        thread_local FloatArena kept;
        Activations act = allocate(g, chunk, t, std::move(kept));
        struct GiveBack {
            Activations& act;
            ~GiveBack() { kept = std::move(act.arena); }
        } give_back{act};
        for (int64_t i = part; i < chunks; i += parts) {
            const int64_t start = i * chunk, m = std::min(chunk, n - start);
            act.n = m;  // a short last chunk uses the front of each slot
            impl_->fill_input(act, x, start, m, t);
            forward_samples(g, act, 0, m);
            const float* out = act.arena.data() + act.offset[g.output];
            std::copy(out, out + m * k, y.begin() + start * k);
        }
    });
    return y;
}

}  // namespace tsviz
