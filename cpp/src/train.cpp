// Trainer (tsviz/train.hpp): the loss of a batch and its gradient with respect to every filter
// layer's weights and bias. Forward (keeping every tensor), a backward pass seeded with
// d loss / d values from the loss node down to the first filter layer, and each layer's weight
// VJP (ops/op.hpp, weight_backward) on its cotangent and its forward input.
#include "tsviz/train.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine.hpp"
#include "model_impl.hpp"
#include "parallel.hpp"
#include "tsviz/error.hpp"

namespace tsviz {

namespace {

// A Model::Impl holding its own copy of the graph (the mutexes and the spare buffers are not copied).
std::shared_ptr<Model::Impl> copy_impl(const Model::Impl& from) {
    auto impl = std::make_shared<Model::Impl>();
    impl->graph = from.graph;
    impl->relu_fusion = from.relu_fusion;
    impl->input = from.input;
    impl->layers = from.layers;
    impl->layer_names = from.layer_names;
    impl->n_outputs = from.n_outputs;
    impl->n_parameters = from.n_parameters;
    impl->max_memory = from.max_memory;
    return impl;
}

}  // namespace

Trainer::Trainer(const Model& model, Loss loss) : impl_(copy_impl(*model.impl_)), loss_(loss) {
    const Graph& g = impl_->graph;
    loss_node_ = g.output;
    // docs/definitions.md, "Losses": cross-entropy reads the logits, the Softmax input.
    if (loss == Loss::CrossEntropy && g.nodes[g.output].kind == OpKind::Softmax) loss_node_ = g.nodes[g.output].inputs[0];
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        if (!n.is_filter_layer()) continue;
        ParameterInfo p;
        p.layer = n.name;
        p.onnx_node = n.onnx_node;
        p.onnx_op = n.onnx_op;
        p.n_filters = n.channels;
        const int64_t per = static_cast<int64_t>(n.weight.size()) / n.channels;
        p.weight_shape = n.kind == OpKind::Conv ? std::vector<int64_t>{n.channels, per / n.kernel, n.kernel}
                                                : std::vector<int64_t>{n.channels, per};
        p.weight_offset = size_;
        size_ += static_cast<int64_t>(n.weight.size());
        p.bias_offset = size_;
        size_ += static_cast<int64_t>(n.bias.size());
        p.weight_source = n.weight_source;
        p.bias_source = n.bias_source;
        p.weight_transposed = n.weight_transposed;
        p.weight_scale = n.weight_scale;
        p.bias_scale = n.bias_scale;
        for (const FoldedAffine& f : n.folded) p.folded.push_back({f.onnx_node, f.onnx_op, f.scale, f.shift});
        params_.push_back(std::move(p));
        nodes_.push_back(static_cast<int>(i));
    }
}

std::vector<float> Trainer::get() const {
    std::vector<float> out(static_cast<size_t>(size_));
    for (size_t k = 0; k < params_.size(); ++k) {
        const Node& n = impl_->graph.nodes[nodes_[k]];
        std::copy(n.weight.begin(), n.weight.end(), out.begin() + params_[k].weight_offset);
        std::copy(n.bias.begin(), n.bias.end(), out.begin() + params_[k].bias_offset);
    }
    return out;
}

void Trainer::set(const float* values) {
    for (int64_t i = 0; i < size_; ++i)
        if (!std::isfinite(values[i])) {
            const ParameterInfo* p = &params_[0];
            for (const ParameterInfo& q : params_)
                if (q.weight_offset <= i) p = &q;
            throw ArgumentError("parameter " + std::to_string(i) + " (layer '" + p->layer + "') is " +
                                (std::isnan(values[i]) ? "NaN" : "infinite") +
                                "; training diverged (try a smaller learning rate)");
        }
    Graph& g = impl_->graph;
    for (size_t k = 0; k < params_.size(); ++k) {
        Node& n = g.nodes[nodes_[k]];
        const float* w = values + params_[k].weight_offset;
        const float* b = values + params_[k].bias_offset;
        std::copy(w, w + n.weight.size(), n.weight.begin());
        std::copy(b, b + n.bias.size(), n.bias.begin());
        ops::rules(n.kind).prepare(n);
    }
    impl_->note_parameters();
}

double Trainer::gradient(const float* x, const float* y, int64_t n, const std::vector<int64_t>& sample_shape,
                         float* grad, float* per_sample) const {
    const Model::Impl& m = *impl_;
    const Graph& g = m.graph;
    const int64_t t = m.check_input(x, n, sample_shape, false);
    const int64_t k = g.nodes[loss_node_].channels, cols = loss_target_columns(loss_, m.n_outputs);
    const int64_t parts = std::min<int64_t>(engine_threads(), n);
    std::vector<std::vector<float>> partial(static_cast<size_t>(parts));
    std::vector<double> part_loss(static_cast<size_t>(parts), 0.0);
    std::vector<bool> keep(g.nodes.size(), false);
    for (int node : nodes_) keep[node] = true;
    // Part p holds samples [p * n / parts, (p + 1) * n / parts): fixed by n and the thread
    // count, so the order of every sum is too.
    parallel_for(parts, [&](int64_t p) {
        const int64_t first = p * n / parts, last = (p + 1) * n / parts, count = last - first;
        if (count == 0) return;
        m.check_memory(count, t);
        // A training step runs many times on batches of one size: each thread keeps its arena
        // and cotangent buffers between steps, so a step allocates nothing for its tensors.
        thread_local Cotangents ct;
        KeptActivations<Trainer> kept(*m.geometry(t), count);
        Activations& act = kept.act;
        m.fill_input(act, x, first, count, t);
        forward_samples(g, act, 0, count);
        const float* values = act.arena.data() + act.offset[loss_node_];
        ct.grad.resize(g.nodes.size());
        GradBuffer& seed = ct.buffer(loss_node_);
        seed.resize(static_cast<size_t>(count * k));
        std::vector<float> losses(static_cast<size_t>(count));
        batch_loss(loss_, values, count, k, y + first * cols, seed.data(), losses.data());
        for (int64_t i = 0; i < count; ++i) part_loss[p] += losses[i];
        if (per_sample) std::copy(losses.begin(), losses.end(), per_sample + first);
        if (!grad) return;
        // The batch loss is the mean over all n samples.
        for (float& v : seed) v /= static_cast<float>(n);
        backward(g, act, 0, count, loss_node_, 1, keep, ct);
        std::vector<float>& out = partial[p];
        out.assign(static_cast<size_t>(size_), 0.f);
        for (size_t j = 0; j < params_.size(); ++j) {
            const int node = nodes_[j];
            if (ct.grad[node].empty()) continue;  // does not reach the loss
            const Node& layer = g.nodes[node];
            const ops::Resolved& r = act.geo[node];
            const ops::ConstView gy(ops::View{ct.grad[node].data(), count, r.out.c, r.out.l});
            ops::rules(layer.kind).weight_backward(
                {layer, r, act.view(layer.inputs[0]), gy, out.data() + params_[j].weight_offset,
                 out.data() + params_[j].bias_offset});
        }
    });
    double total = 0;
    for (double l : part_loss) total += l;
    if (grad) {
        std::fill(grad, grad + size_, 0.f);
        for (const auto& part : partial)
            if (!part.empty())
                for (int64_t i = 0; i < size_; ++i) grad[i] += part[i];
    }
    return total / static_cast<double>(n);
}

std::vector<float> Trainer::predict(const float* x, int64_t n, const std::vector<int64_t>& sample_shape) const {
    Model m;  // shares the graph for this call only
    m.impl_ = impl_;
    return m.predict(x, n, sample_shape);
}

Model Trainer::model() const {
    Model m;
    m.impl_ = copy_impl(*impl_);
    return m;
}

}  // namespace tsviz
