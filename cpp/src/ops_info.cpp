// The public view of the op registry (tsviz/ops.hpp).
#include "tsviz/ops.hpp"

#include "onnx/import.hpp"
#include "ops/op.hpp"

namespace tsviz {

std::vector<std::string> registered_ops() {
    std::vector<std::string> names;
    for (const auto& r : ops::all_rules())
        if (r.kind != OpKind::Input) names.push_back(r.name);
    return names;
}

std::vector<std::string> activation_ops() {
    std::vector<std::string> names;
    for (const auto& r : ops::all_rules())
        if (r.activation) names.push_back(r.name);
    return names;
}

std::vector<OnnxOpInfo> onnx_ops() {
    std::vector<OnnxOpInfo> out;
    for (const onnx::OnnxOp& o : onnx::supported_ops())
        out.push_back({o.op, o.ir_op, o.keeps_channels, o.activation, o.since_opset});
    return out;
}

}  // namespace tsviz
