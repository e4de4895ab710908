// The public view of the op registry (tsviz/ops.hpp).
#include "tsviz/ops.hpp"

#include "ops/op.hpp"

namespace tsviz {

std::vector<std::string> registered_ops() {
    std::vector<std::string> names;
    for (const auto& r : ops::all_rules())
        if (r.kind != OpKind::Input) names.push_back(r.name);
    return names;
}

}  // namespace tsviz
