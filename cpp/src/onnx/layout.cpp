// Layout inference while lowering: which axis of each ONNX tensor is the batch, the channels
// or the time; the input's layout (NCT or NTC) decided by the first op that needs to know;
// the 1-D window attributes of convolutions and poolings; adding IR nodes with their lengths.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "onnx/lowering.hpp"

namespace tsviz::onnx {

void Lowering::decide(Layout layout) {
    if (layout_ != Layout::Undecided) return;
    layout_ = layout;
    Node& input_node = g_.nodes[0];
    const int64_t c = layout == Layout::NCT ? in_dims_[0] : in_dims_[1];
    const int64_t t = layout == Layout::NCT ? in_dims_[1] : in_dims_[0];
    if (c <= 0)
        fail("input '" + g_.input_name + "': its channel axis has no fixed size");
    input_node.channels = static_cast<int>(c);
    g_.layout = layout == Layout::NCT ? InputLayout::NCT : InputLayout::NTC;
    g_.input_channels = c;
    g_.input_length = t;
    len_[0] = t;
}

// Adds an IR node and infers its length at the declared input length.
int Lowering::add_node(Node node) {
    for (int i : node.inputs)
        if (i == 0 && layout_ == Layout::Undecided) decide_default();
    node.onnx_node = cur_->name.empty() ? cur_->output.at(0) : cur_->name;
    node.onnx_op = cur_->op_type;
    node.name = cur_->output.at(0);
    g_.nodes.push_back(std::move(node));
    const Node& n = g_.nodes.back();
    int64_t length = -1;
    std::vector<Shape> in;
    bool known = true;
    for (int i : n.inputs) {
        if (len_[i] < 0 || g_.nodes[i].channels < 0) known = false;
        in.push_back({g_.nodes[i].channels, len_[i]});
    }
    if (known) {
        try {
            ops::Resolved r = ops::rules(n.kind).infer(n, in);
            length = r.out.l;
            if (n.kind == OpKind::Flatten) g_.nodes.back().channels = static_cast<int>(r.out.c);
        } catch (const ShapeError& e) {
            fail(std::string(e.what()) + " (at the model's declared input length " +
                 std::to_string(g_.input_length) + ")");
        }
    } else if (n.kind == OpKind::Dense || n.kind == OpKind::GlobalAvgPool ||
               n.kind == OpKind::GlobalMaxPool) {
        length = 1;
    }
    len_.push_back(length);
    return static_cast<int>(g_.nodes.size()) - 1;
}

// Identifies the channel axis (1) and the time axis among the spatial axes of a
// convolution or pooling input, deciding the layout if needed. `kernel` has one entry per
// spatial axis; axes other than time must have kernel 1. Returns the time axis index.
size_t Lowering::bind_spatial(const Tensor& t, const std::vector<int64_t>& kernel) {
    const size_t rank = t.axes.size();
    if (rank < 3) fail_node("expects an input of rank >= 3, got rank " + std::to_string(rank));
    if (kernel.size() != rank - 2)
        fail_node("kernel has " + std::to_string(kernel.size()) + " spatial dims; the input has " +
                  std::to_string(rank - 2));
    if (kind(t.axes[0]) != Ax::N) fail_node("axis 0 of its input is not the batch axis");
    std::vector<size_t> candidates;
    for (size_t i = 2; i < rank; ++i)
        if (kind(t.axes[i]) != Ax::One) candidates.push_back(i);
    size_t time_axis = rank - 1;
    if (candidates.size() == 1) {
        time_axis = candidates[0];
    } else if (candidates.size() > 1) {
        fail_node("convolves or pools over " + std::to_string(candidates.size()) +
                  " axes that are not of size 1; TSViz handles 1-D time series");
    } else {
        for (size_t i = 2; i < rank; ++i)
            if (kernel[i - 2] != 1) time_axis = i;
    }
    bind(t.axes[1], true);
    bind(t.axes[time_axis], false);
    if (layout_ == Layout::Undecided) decide_default();
    const Ax ck = kind(t.axes[1]);
    if (!(ck == Ax::C || (ck == Ax::One && channels_of(t) == 1)))
        fail_node("axis 1 of its input is not the channel axis of the model's tensor");
    const Ax tk = kind(t.axes[time_axis]);
    if (!(tk == Ax::L || tk == Ax::One))
        fail_node("its time axis is the channel axis of the model's tensor");
    if (tk == Ax::One && kind(t.axes[1]) == Ax::One && channels_of(t) != 1)
        fail_node("cannot tell the channel axis of its input");
    for (size_t i = 2; i < rank; ++i)
        if (i != time_axis && kernel[i - 2] != 1)
            fail_node("kernel " + join(kernel) + " spans an axis of size 1; only 1-D kernels are supported");
    return time_axis;
}

// 1-D window attributes (kernel, strides, pads, dilations, auto_pad) along the time axis;
// every other spatial axis must be trivial.
void Lowering::window_attrs(Node& n, const std::vector<int64_t>& kernel, size_t time_axis, size_t rank,
                  bool has_dilations) {
    const size_t sp = rank - 2, ti = time_axis - 2;
    std::vector<int64_t> strides(sp, 1), dil(sp, 1), pads(2 * sp, 0);
    if (attr_ints("strides", strides) && strides.size() != sp)
        fail_node("attribute 'strides' has " + std::to_string(strides.size()) + " entries, expected " + std::to_string(sp));
    if (has_dilations && attr_ints("dilations", dil) && dil.size() != sp)
        fail_node("attribute 'dilations' has " + std::to_string(dil.size()) + " entries, expected " + std::to_string(sp));
    if (!has_dilations && attr("dilations"))
        fail_node("attribute 'dilations' is not supported for this op at opset " + std::to_string(opset_));
    if (attr_ints("pads", pads) && pads.size() != 2 * sp)
        fail_node("attribute 'pads' has " + std::to_string(pads.size()) + " entries, expected " + std::to_string(2 * sp));
    for (size_t i = 0; i < sp; ++i) {
        if (strides[i] > kMaxExtent || dil[i] > kMaxExtent || pads[i] > kMaxExtent || pads[i + sp] > kMaxExtent ||
            kernel[i] > kMaxExtent)
            fail_node("kernel, strides, dilations or pads larger than " + std::to_string(kMaxExtent) + " are not supported");
        if (strides[i] < 1) fail_node("attribute 'strides': " + join(strides) + " must be >= 1");
        if (dil[i] < 1) fail_node("attribute 'dilations': " + join(dil) + " must be >= 1");
        if (pads[i] < 0 || pads[i + sp] < 0) fail_node("attribute 'pads': negative padding " + join(pads));
        if (i != ti && (pads[i] || pads[i + sp]))
            fail_node("attribute 'pads' " + join(pads) + " pads an axis of size 1");
    }
    const std::string ap = attr_string("auto_pad", "NOTSET");
    if (ap == "NOTSET") n.auto_pad = AutoPad::NotSet;
    else if (ap == "VALID") n.auto_pad = AutoPad::Valid;
    else if (ap == "SAME_UPPER") n.auto_pad = AutoPad::SameUpper;
    else if (ap == "SAME_LOWER") n.auto_pad = AutoPad::SameLower;
    else fail_node("attribute 'auto_pad': unsupported value '" + ap + "'");
    for (size_t i = 0; i < sp; ++i)
        if (i != ti && (strides[i] != 1 || dil[i] != 1) && kernel[i] != 1)
            fail_node("strides or dilations on an axis of size 1 are not supported");
    n.kernel = static_cast<int>(kernel[ti]);
    n.stride = static_cast<int>(strides[ti]);
    n.dilation = static_cast<int>(dil[ti]);
    n.pad_begin = static_cast<int>(pads[ti]);
    n.pad_end = static_cast<int>(pads[ti + sp]);
    if (n.kernel < 1) fail_node("kernel size must be >= 1, got " + std::to_string(n.kernel));
}

}  // namespace tsviz::onnx
