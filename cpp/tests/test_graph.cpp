// The structured description of a loaded model's graph (Model::nodes, LayerInfo), through the
// public API only: nodes, ops, shapes and filter layers of committed models, checked by hand
// against the networks tests/models/make_models.py exports. test_graph MODELS_DIR B5M.csv
#include <algorithm>
#include <string>
#include <vector>

#include "testing.hpp"
#include "tsviz/model.hpp"
#include "tsviz/ops.hpp"

using tsviz::LayerInfo;
using tsviz::Model;
using tsviz::NodeInfo;

namespace {

struct Want {
    const char* op;
    int64_t channels, length, kernel, stride, layer;
};

// The paper's forecaster: Conv(2->16, k5)-ReLU-MaxPool2-Conv(16->32, k5)-ReLU-MaxPool2-
// Conv(32->32, k3)-ReLU-Flatten-Linear(384, 1), at the declared length 50.
void test_paper_net(const testing::Args& a) {
    const Model m = Model::load(a.model("paper_net_op17"));
    const std::vector<Want> want = {
        {"Input", 2, 50, 1, 1, -1},   {"Conv", 16, 50, 5, 1, 0},   {"Relu", 16, 50, 1, 1, -1},
        {"MaxPool", 16, 25, 2, 2, -1}, {"Conv", 32, 25, 5, 1, 1},  {"Relu", 32, 25, 1, 1, -1},
        {"MaxPool", 32, 12, 2, 2, -1}, {"Conv", 32, 12, 3, 1, 2},  {"Relu", 32, 12, 1, 1, -1},
        {"Flatten", 384, 1, 1, 1, -1}, {"Dense", 1, 1, 1, 1, 3},
    };
    const std::vector<NodeInfo>& nodes = m.nodes();
    CHECK(nodes.size() == want.size());
    for (size_t i = 0; i < std::min(nodes.size(), want.size()); ++i) {
        const NodeInfo& n = nodes[i];
        CHECK(n.op == want[i].op);
        CHECK(n.channels == want[i].channels && n.length == want[i].length);
        CHECK(n.kernel == want[i].kernel && n.stride == want[i].stride);
        CHECK(n.layer == want[i].layer && n.is_filter_layer() == (want[i].layer >= 0));
        CHECK(i == 0 ? n.inputs.empty() : n.inputs == std::vector<int64_t>{static_cast<int64_t>(i) - 1});
    }
    CHECK(nodes[0].name == m.input().name && nodes.back().name == m.output_name());
    CHECK(nodes[10].onnx_op == "Gemm" && nodes[1].onnx_op == "Conv");
    // a^l of each convolution is the ReLU after it; the dense output is its own a^l
    const std::vector<LayerInfo>& layers = m.layers();
    CHECK(layers.size() == 4);
    for (size_t l = 0; l < layers.size(); ++l) {
        const int64_t z = layers[l].node;
        CHECK(nodes[z].name == layers[l].name && nodes[z].layer == static_cast<int64_t>(l));
        const int64_t a = l < 3 ? z + 1 : z;
        CHECK(layers[l].activation_node == a && layers[l].activation == nodes[a].name);
    }
    // the explanation reads a^l from the same place
    std::vector<float> x(2 * 50, 0.25f);
    const tsviz::Explanation ex = m.explain(x.data(), 1, {2, 50});
    for (const LayerInfo& l : layers) CHECK(ex.activation_name(l.name) == l.activation);

    // labels, and the one lookup of a layer by tensor name, label, its first part or index
    const std::string dot = " \xc2\xb7 ";
    CHECK(layers[0].label == "conv 1" + dot + "k=5" + dot + "16 filters");
    CHECK(layers[1].label == "conv 2" + dot + "k=5" + dot + "32 filters");
    CHECK(layers[2].label == "conv 3" + dot + "k=3" + dot + "32 filters");
    CHECK(layers[3].label == "dense 1" + dot + "1 unit");
    for (const std::string& key : {layers[1].name, layers[1].label, std::string("conv 2"), std::string(" CONV   2 "),
                                   std::string("1"), std::string("-3"), std::string("001")})
        CHECK(m.layer(key).name == layers[1].name);
    CHECK(m.layer("-1").name == "y" && m.layer("dense 1").name == "y");
    CHECK(tsviz::find_layer(layers, layers[2].name) == 2);
    const std::string listing = "give a number 0..3, a label or a tensor name: 0 = '" + layers[0].label + "' ('" +
                                layers[0].name + "'); 1 = '";
    CHECK_THROWS(m.layer("conv 9"), tsviz::ArgumentError, "no filter layer named 'conv 9'; " + listing);
    CHECK_THROWS(m.layer("4"), tsviz::ArgumentError, "no filter layer with index 4; " + listing);
    CHECK_THROWS(m.layer("-5"), tsviz::ArgumentError, "no filter layer with index -5; ");
    CHECK_THROWS(m.layer("99999999999999999999"), tsviz::ArgumentError,
                 "no filter layer with index 99999999999999999999; ");
    CHECK_THROWS(tsviz::find_layer({}, "x"), tsviz::ArgumentError, "no filter layer named 'x'; give a number 0..-1");
    // the explanation takes the same keys
    CHECK(ex.importance("conv 2") == ex.importance(layers[1].name));
    CHECK(ex.activation_name("0") == layers[0].activation);
    CHECK(ex.trace("conv 3", 1, 2).at(layers[2].activation).mask ==
          ex.trace(layers[2].name, 1, 2).at(layers[2].activation).mask);
    CHECK_THROWS(ex.saliency("conv 9"), tsviz::ArgumentError, "no filter layer named 'conv 9'; give a number");
    CHECK_THROWS(ex.trace("nope", 0, 0), tsviz::ArgumentError, "no filter layer named 'nope'; give a number");
}

// Residual blocks: an Add reads two nodes; a convolution whose only consumer is the Add has
// no activation after it (a^l = z^l); the global pooling ends at one position.
void test_resnet(const testing::Args& a) {
    const Model m = Model::load(a.model("resnet_op17"));
    const std::vector<NodeInfo>& nodes = m.nodes();
    int adds = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const NodeInfo& n = nodes[i];
        for (int64_t p : n.inputs) CHECK(p >= 0 && p < static_cast<int64_t>(i));
        if (n.op != "Add") continue;
        ++adds;
        CHECK(n.inputs.size() == 2);
        CHECK(nodes[n.inputs[0]].channels == n.channels && nodes[n.inputs[1]].channels == n.channels);
    }
    CHECK(adds == 2);
    int pools = 0;
    for (const NodeInfo& n : nodes)
        if (n.op == "GlobalAvgPool") {
            ++pools;
            CHECK(n.channels == 32 && n.length == 1);
        }
    CHECK(pools == 1);
    for (const LayerInfo& l : m.layers()) {
        const bool relu_after = nodes[l.activation_node].op == "Relu";
        CHECK(relu_after ? nodes[l.activation_node].inputs == std::vector<int64_t>{l.node}
                         : l.activation_node == l.node);
        if (l.name == "/block1/c2/Conv_output_0") CHECK(!relu_after);
    }
}

// A free input length leaves every length open; channels are known.
void test_free_length(const testing::Args& a) {
    const Model m = Model::load(a.model("fcn_op17"));
    std::vector<int64_t> filters;
    for (const NodeInfo& n : m.nodes()) {
        CHECK(n.length == -1);
        if (n.is_filter_layer()) filters.push_back(n.channels);
    }
    CHECK((filters == std::vector<int64_t>{128, 256, 128, 2}));
}

// Every op a committed model's graph holds is a registered op; the summary prints one row
// per node after the input, each with its op.
void test_every_model(const testing::Args& a) {
    const std::vector<std::string> ops = tsviz::registered_ops();
    CHECK(std::find(ops.begin(), ops.end(), "Input") == ops.end());
    for (const char* name : {"paper_net_op17", "keras_paper_net_op17", "resnet_op17", "fcn_op17", "ops_zoo_op17",
                             "channels_last_op17"}) {
        const Model m = Model::load(a.model(name));
        CHECK(m.nodes().front().op == "Input");
        size_t filter_nodes = 0;
        for (size_t i = 1; i < m.nodes().size(); ++i) {
            const NodeInfo& n = m.nodes()[i];
            CHECK(std::find(ops.begin(), ops.end(), n.op) != ops.end());
            CHECK(testing::contains(m.summary(), "  " + std::to_string(i) + (i < 10 ? "    " : "   ") + n.op));
            if (n.is_filter_layer()) {
                CHECK(m.layers()[n.layer].node == static_cast<int64_t>(i));
                ++filter_nodes;
            }
        }
        CHECK(filter_nodes == m.layers().size());
    }
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    try {
        test_paper_net(a);
        test_resnet(a);
        test_free_length(a);
        test_every_model(a);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return testing::report("test_graph");
}
