// Tests of the ONNX protobuf decoder (cpp/src/onnx/proto.cpp), standalone so it runs without
// a test framework: test_proto <model.onnx>, normally cpp/tests/data/tiny.onnx (made by
// make_tiny.py). The damaged-input sections are the point: whatever the bytes, the decoder
// must either decode or throw tsviz::ModelError, and never touch memory it should not (run
// under ASan/UBSan to see the latter).

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "onnx/proto.hpp"
#include "tsviz/error.hpp"

namespace {

int g_passed = 0;
int g_failed = 0;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (cond) {                                                               \
            ++g_passed;                                                           \
        } else {                                                                  \
            ++g_failed;                                                           \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                         \
    } while (0)

using Bytes = std::vector<uint8_t>;
using tsviz::onnx::ModelProto;
using tsviz::onnx::parse_model;

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// --- hand-built protobuf, so the tests do not depend on the decoder's own idea of the format

void put_varint(Bytes& out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<uint8_t>(v | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<uint8_t>(v));
}

void put_tag(Bytes& out, uint32_t field, uint32_t wire_type) {
    put_varint(out, static_cast<uint64_t>(field) << 3 | wire_type);
}

void put_len(Bytes& out, uint32_t field, const Bytes& payload) {
    put_tag(out, field, 2);
    put_varint(out, payload.size());
    out.insert(out.end(), payload.begin(), payload.end());
}

void put_str(Bytes& out, uint32_t field, const std::string& s) {
    put_len(out, field, Bytes(s.begin(), s.end()));
}

void put_fixed32(Bytes& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// ModelProto { graph = GraphProto(graph_payload) }
Bytes model_with_graph(const Bytes& graph_payload) {
    Bytes model;
    put_varint(model, 0x08);  // ir_version = 7
    put_varint(model, 7);
    put_len(model, 7, graph_payload);
    return model;
}

// Runs the decoder, returning the ModelError message ("" if it decoded). Anything other
// than ModelError escaping is a failure of the contract.
std::string error_of(const Bytes& bytes, const std::string& what, ModelProto* out = nullptr) {
    try {
        ModelProto m = parse_model(bytes.data(), bytes.size(), what);
        if (out) *out = std::move(m);
        return "";
    } catch (const tsviz::ModelError& e) {
        return e.what();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return "<unexpected>";
    } catch (...) {
        std::fprintf(stderr, "unexpected non-std exception\n");
        return "<unexpected>";
    }
}

bool well_formed_error(const std::string& msg, const std::string& what) {
    return msg.empty() ||
           starts_with(msg, what + ": truncated ONNX file (") ||
           starts_with(msg, what + ": not an ONNX model (") ||
           starts_with(msg, what + ": malformed ONNX: ");
}

// --- (1) the real model

void test_real_model(const Bytes& file) {
    ModelProto m;
    const std::string err = error_of(file, "tiny.onnx", &m);
    CHECK(err.empty());
    if (!err.empty()) {
        std::fprintf(stderr, "  %s\n", err.c_str());
        return;
    }
    CHECK(m.has_graph);
    CHECK(m.ir_version > 0);
    CHECK(!m.opset_import.empty());
    CHECK(m.opset_import.empty() || m.opset_import[0].version > 0);

    const auto& g = m.graph;
    CHECK(!g.node.empty());
    bool saw_conv = false;
    for (const auto& n : g.node) {
        CHECK(!n.op_type.empty());
        CHECK(!n.output.empty());
        if (n.op_type == "Conv") {
            saw_conv = true;
            CHECK(n.input.size() >= 2);
            for (const auto& a : n.attribute) {
                CHECK(!a.name.empty());
                if (a.name == "kernel_shape") {
                    CHECK(a.type == tsviz::onnx::kAttrInts);
                    CHECK(!a.ints.empty() && a.ints[0] > 0);
                }
            }
        }
    }
    CHECK(saw_conv);

    CHECK(!g.initializer.empty());
    bool saw_raw = false;
    for (const auto& t : g.initializer) {
        CHECK(!t.name.empty());
        CHECK(!t.dims.empty());
        int64_t count = 1;
        for (int64_t d : t.dims) {
            CHECK(d > 0);
            count *= d;
        }
        if (!t.raw_data.empty()) {
            saw_raw = true;
            if (t.data_type == tsviz::onnx::kFloat)
                CHECK(static_cast<int64_t>(t.raw_data.size()) == count * 4);
        } else if (!t.float_data.empty()) {
            CHECK(static_cast<int64_t>(t.float_data.size()) == count);
        }
    }
    CHECK(saw_raw);

    CHECK(!g.input.empty());
    for (const auto& vi : g.input) {
        CHECK(!vi.name.empty());
        CHECK(vi.has_tensor_type);
        CHECK(vi.has_shape);
        CHECK(!vi.shape.empty());
    }
    CHECK(!g.output.empty());
}

// Checks specific to tiny.onnx as written by make_tiny.py; skipped for other models.
void test_tiny_details(const Bytes& file) {
    ModelProto m;
    if (!error_of(file, "tiny.onnx", &m).empty() || m.producer_name != "tsviz-make-tiny") return;
    const auto& g = m.graph;
    CHECK(g.name == "tiny");
    CHECK(g.node.size() == 4);
    if (g.node.size() == 4) {
        CHECK(g.node[0].op_type == "Conv");
        CHECK(g.node[1].op_type == "Relu");
        CHECK(g.node[2].op_type == "Flatten");
        CHECK(g.node[3].op_type == "Gemm");
        CHECK(g.node[0].name == "conv");
        CHECK((g.node[0].input == std::vector<std::string>{"x", "conv_w", "conv_b"}));
        bool pads = false;
        for (const auto& a : g.node[0].attribute)
            if (a.name == "pads") pads = a.ints == std::vector<int64_t>{0, 0};
        CHECK(pads);
        bool trans_b = false;
        for (const auto& a : g.node[3].attribute)
            if (a.name == "transB") trans_b = a.type == tsviz::onnx::kAttrInt && a.i == 1;
        CHECK(trans_b);
    }
    CHECK(g.initializer.size() == 4);
    for (const auto& t : g.initializer) {
        if (t.name == "conv_w") {
            CHECK((t.dims == std::vector<int64_t>{4, 2, 3}));
            CHECK(t.raw_data.size() == 4 * 2 * 3 * 4);
        } else if (t.name == "gemm_b") {
            CHECK((t.dims == std::vector<int64_t>{3}));
            CHECK(t.raw_data.empty());
            CHECK((t.float_data == std::vector<float>{0.5f, -0.25f, 0.125f}));
        }
    }
    CHECK(g.input.size() == 1);
    if (g.input.size() == 1) {
        const auto& x = g.input[0];
        CHECK(x.name == "x");
        CHECK(x.elem_type == tsviz::onnx::kFloat);
        CHECK(x.shape.size() == 3);
        if (x.shape.size() == 3) {
            CHECK(!x.shape[0].has_value && x.shape[0].param == "N");
            CHECK(x.shape[1].has_value && x.shape[1].value == 2);
            CHECK(x.shape[2].has_value && x.shape[2].value == 16);
        }
    }
    CHECK(m.opset_import.size() == 1 && m.opset_import[0].version == 13);
}

// --- (2) every prefix of the file

void test_truncations(const Bytes& file) {
    std::vector<size_t> lengths;
    if (file.size() <= 4000) {
        for (size_t n = 0; n < file.size(); ++n) lengths.push_back(n);
    } else {
        std::mt19937_64 rng(1234);
        for (size_t n = 0; n < 64; ++n) lengths.push_back(n);  // the header region, densely
        for (int i = 0; i < 2000; ++i) lengths.push_back(rng() % file.size());
    }
    int bad = 0;
    int malformed = 0;
    for (size_t n : lengths) {
        const Bytes prefix(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(n));
        const std::string err = error_of(prefix, "cut.onnx");
        if (!well_formed_error(err, "cut.onnx")) {
            if (++bad <= 5) std::fprintf(stderr, "  prefix %zu: %s\n", n, err.c_str());
        }
        // Lengths nested inside a cut-short message are all consistent, so a prefix may only
        // be truncated, lack its graph, or (cut at a field boundary after it) decode.
        if (starts_with(err, "cut.onnx: malformed ONNX")) {
            if (++malformed <= 5) std::fprintf(stderr, "  prefix %zu: %s\n", n, err.c_str());
        }
    }
    CHECK(bad == 0);
    CHECK(malformed == 0);
    CHECK(starts_with(error_of(Bytes(file.begin(), file.end() - 1), "cut.onnx"),
                      "cut.onnx: truncated ONNX file (") ||
          error_of(Bytes(file.begin(), file.end() - 1), "cut.onnx").empty());
}

// --- (3) random damage

void test_byte_flips(const Bytes& file) {
    std::mt19937_64 rng(20240611);
    int bad = 0;
    int decoded = 0;
    for (int iter = 0; iter < 4000; ++iter) {
        Bytes damaged = file;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) {
            const size_t at = rng() % damaged.size();
            // Mostly single-bit flips, which keep the surroundings plausible; sometimes a
            // whole random byte, which more often breaks a varint or a wire type.
            if (rng() % 4) damaged[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
            else damaged[at] = static_cast<uint8_t>(rng());
        }
        const std::string err = error_of(damaged, "flip.onnx");
        if (err.empty()) ++decoded;
        if (!well_formed_error(err, "flip.onnx") && ++bad <= 5)
            std::fprintf(stderr, "  flip iteration %d: %s\n", iter, err.c_str());
    }
    CHECK(bad == 0);
    std::printf("byte flips: %d of 4000 damaged copies still decoded\n", decoded);

    // Pure noise of many lengths.
    for (int iter = 0; iter < 2000; ++iter) {
        Bytes noise(rng() % 300);
        for (auto& b : noise) b = static_cast<uint8_t>(rng());
        const std::string err = error_of(noise, "noise.bin");
        if (!well_formed_error(err, "noise.bin") && ++bad <= 5)
            std::fprintf(stderr, "  noise iteration %d: %s\n", iter, err.c_str());
    }
    CHECK(bad == 0);
}

// --- (4) specific refusals

void test_messages() {
    {
        const std::string e = error_of(Bytes{}, "empty.onnx");
        CHECK(e == "empty.onnx: not an ONNX model (empty)");
        try {
            parse_model(nullptr, 0, "null.onnx");
            CHECK(false);
        } catch (const tsviz::ModelError& ex) {
            CHECK(std::string(ex.what()) == "null.onnx: not an ONNX model (empty)");
        }
    }
    {
        const std::string text = "hello world";
        const std::string e = error_of(Bytes(text.begin(), text.end()), "hello.onnx");
        std::printf("hello world -> %s\n", e.c_str());
        CHECK(starts_with(e, "hello.onnx: not an ONNX model ("));
    }
    {
        // A protobuf that is valid but has no graph (e.g. some other message entirely).
        Bytes b;
        put_varint(b, 0x08);
        put_varint(b, 7);
        put_str(b, 2, "producer");
        CHECK(error_of(b, "nograph.onnx") == "nograph.onnx: not an ONNX model (no graph)");
    }
    {
        // ModelProto.graph claiming 2^40 bytes at top level: the file was cut short.
        Bytes b;
        put_tag(b, 7, 2);
        put_varint(b, uint64_t{1} << 40);
        b.push_back(0x0a);
        const std::string e = error_of(b, "huge.onnx");
        std::printf("2^40 length -> %s\n", e.c_str());
        CHECK(starts_with(e, "huge.onnx: truncated ONNX file ("));
        CHECK(contains(e, "1099511627776"));
        CHECK(contains(e, "graph"));
    }
    {
        // The same claim nested inside a graph whose own length is consistent: malformed.
        Bytes node_claim;
        put_tag(node_claim, 1, 2);
        put_varint(node_claim, uint64_t{1} << 40);
        node_claim.push_back(0x00);
        const std::string e = error_of(model_with_graph(node_claim), "nested.onnx");
        std::printf("nested 2^40 length -> %s\n", e.c_str());
        CHECK(starts_with(e, "nested.onnx: malformed ONNX: "));
        CHECK(contains(e, "GraphProto field 1 (node)"));
    }
    {
        // A length whose uint64 value would wrap a size_t addition.
        Bytes b;
        put_tag(b, 7, 2);
        put_varint(b, ~uint64_t{0});
        CHECK(starts_with(error_of(b, "wrap.onnx"), "wrap.onnx: truncated ONNX file ("));
    }
    {
        // ir_version as an 11-byte varint.
        Bytes b{0x08};
        for (int i = 0; i < 10; ++i) b.push_back(0xff);
        b.push_back(0x01);
        const std::string e = error_of(b, "long.onnx");
        std::printf("11-byte varint -> %s\n", e.c_str());
        CHECK(starts_with(e, "long.onnx: not an ONNX model ("));
        CHECK(contains(e, "longer than 10 bytes"));
    }
    {
        // A 10-byte varint with bits above 63 set.
        Bytes b{0x08};
        for (int i = 0; i < 9; ++i) b.push_back(0xff);
        b.push_back(0x7f);
        CHECK(contains(error_of(b, "over.onnx"), "overflows 64 bits"));
    }
    {
        // A varint cut off by the end of the file.
        Bytes b{0x08, 0xff, 0xff};
        CHECK(starts_with(error_of(b, "cut.onnx"), "cut.onnx: truncated ONNX file ("));
    }
    {
        // NodeProto.op_type sent as a varint.
        Bytes node;
        put_tag(node, 4, 0);
        put_varint(node, 5);
        Bytes graph;
        put_len(graph, 1, node);
        const std::string e = error_of(model_with_graph(graph), "wire.onnx");
        std::printf("wrong wire type -> %s\n", e.c_str());
        CHECK(starts_with(e, "wire.onnx: malformed ONNX: NodeProto field 4 (op_type) has wire "
                             "type 0, expected 2"));
    }
    {
        // Groups are refused, at top level and nested.
        Bytes b;
        put_tag(b, 9, 3);
        CHECK(starts_with(error_of(b, "group.onnx"), "group.onnx: not an ONNX model ("));
        Bytes node;
        put_tag(node, 30, 4);
        Bytes graph;
        put_len(graph, 1, node);
        CHECK(contains(error_of(model_with_graph(graph), "group.onnx"), "group"));
    }
    {
        // Wire types 6 and 7 do not exist; field number 0 does not either.
        CHECK(starts_with(error_of(Bytes{0x0e}, "wt.onnx"), "wt.onnx: not an ONNX model ("));
        CHECK(starts_with(error_of(Bytes{0x0f}, "wt.onnx"), "wt.onnx: not an ONNX model ("));
        CHECK(starts_with(error_of(Bytes{0x00, 0x00}, "f0.onnx"), "f0.onnx: not an ONNX model ("));
    }
    {
        // Packed float_data whose length is not a multiple of 4.
        Bytes tensor;
        put_len(tensor, 4, Bytes{0, 0, 0, 0, 0, 0});
        Bytes graph;
        put_len(graph, 5, tensor);
        const std::string e = error_of(model_with_graph(graph), "odd.onnx");
        CHECK(starts_with(e, "odd.onnx: malformed ONNX: TensorProto field 4 (float_data)"));
    }
    {
        // Fixed-width fields cut off at the end of their message.
        Bytes attr;
        put_tag(attr, 2, 5);  // f, needs 4 bytes
        attr.push_back(0);
        Bytes node;
        put_len(node, 5, attr);
        Bytes graph;
        put_len(graph, 1, node);
        CHECK(starts_with(error_of(model_with_graph(graph), "f.onnx"), "f.onnx: malformed ONNX: "));
    }
}

// --- (5) repeated fields, packed and not, and other hand-built encodings

void test_encodings() {
    const std::vector<int64_t> values{3, -1, 0, int64_t{1} << 40, -(int64_t{1} << 62)};

    Bytes unpacked_tensor;
    for (int64_t v : values) {
        put_tag(unpacked_tensor, 1, 0);  // dims, one tag per element
        put_varint(unpacked_tensor, static_cast<uint64_t>(v));
    }
    for (int64_t v : values) {
        put_tag(unpacked_tensor, 7, 0);  // int64_data
        put_varint(unpacked_tensor, static_cast<uint64_t>(v));
    }
    put_str(unpacked_tensor, 8, "unpacked");

    Bytes packed_tensor;
    Bytes run;
    for (int64_t v : values) put_varint(run, static_cast<uint64_t>(v));
    put_len(packed_tensor, 1, run);  // dims, one length-delimited run
    put_len(packed_tensor, 7, run);  // int64_data
    put_str(packed_tensor, 8, "packed");
    // A second packed run appends, as protobuf specifies.
    Bytes run2;
    put_varint(run2, 42);
    put_len(packed_tensor, 7, run2);

    // int32_data: -2 is written sign-extended to 10 bytes.
    Bytes int32_run;
    put_varint(int32_run, static_cast<uint64_t>(int64_t{-2}));
    put_varint(int32_run, 7);
    put_len(packed_tensor, 5, int32_run);
    put_tag(packed_tensor, 2, 0);
    put_varint(packed_tensor, 6);  // data_type = INT32

    // float_data: one packed run of two, then one unpacked element.
    Bytes floats;
    put_fixed32(floats, 0x3f800000u);  // 1.0
    put_fixed32(floats, 0xc0000000u);  // -2.0
    put_len(packed_tensor, 4, floats);
    put_tag(packed_tensor, 4, 5);
    put_fixed32(packed_tensor, 0x3e800000u);  // 0.25

    // double_data unpacked (wire type 1) and uint64_data packed.
    put_tag(packed_tensor, 10, 1);
    const Bytes one_and_a_half{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f};
    packed_tensor.insert(packed_tensor.end(), one_and_a_half.begin(), one_and_a_half.end());
    Bytes u64;
    put_varint(u64, ~uint64_t{0});
    put_len(packed_tensor, 11, u64);

    // external_data entries and data_location.
    Bytes entry;
    put_str(entry, 1, "location");
    put_str(entry, 2, "weights.bin");
    put_len(packed_tensor, 13, entry);
    put_tag(packed_tensor, 14, 0);
    put_varint(packed_tensor, 1);

    // Unknown fields of every wire type are skipped.
    put_tag(packed_tensor, 99, 0);
    put_varint(packed_tensor, 123456);
    put_tag(packed_tensor, 100, 1);
    for (int i = 0; i < 8; ++i) packed_tensor.push_back(0xaa);
    put_str(packed_tensor, 101, "ignored");
    put_tag(packed_tensor, 102, 5);
    put_fixed32(packed_tensor, 0);

    // A node with ints packed and unpacked, floats, a tensor and a subgraph attribute.
    Bytes attr_packed;
    put_str(attr_packed, 1, "pads");
    put_len(attr_packed, 8, run);
    put_tag(attr_packed, 20, 0);
    put_varint(attr_packed, 7);
    Bytes attr_unpacked;
    put_str(attr_unpacked, 1, "strides");
    for (int64_t v : values) {
        put_tag(attr_unpacked, 8, 0);
        put_varint(attr_unpacked, static_cast<uint64_t>(v));
    }
    Bytes attr_graph;
    put_str(attr_graph, 1, "then_branch");
    put_len(attr_graph, 6, Bytes{0xff, 0xff, 0xff});  // not decoded, so garbage is fine
    Bytes attr_tensor;
    put_str(attr_tensor, 1, "value");
    Bytes small_tensor;
    put_len(small_tensor, 4, floats);
    put_len(attr_tensor, 5, small_tensor);
    put_tag(attr_tensor, 2, 5);
    put_fixed32(attr_tensor, 0x40400000u);  // f = 3.0
    Bytes node;
    put_str(node, 1, "a");
    put_str(node, 1, "b");
    put_str(node, 2, "c");
    put_str(node, 4, "Conv");
    put_len(node, 5, attr_packed);
    put_len(node, 5, attr_unpacked);
    put_len(node, 5, attr_graph);
    put_len(node, 5, attr_tensor);

    // An input with dim_value, dim_param, and a later dim_param overriding a dim_value.
    Bytes d1, d2, d3;
    put_tag(d1, 1, 0);
    put_varint(d1, 16);
    put_str(d2, 2, "batch");
    put_tag(d3, 1, 0);
    put_varint(d3, 5);
    put_str(d3, 2, "T");
    Bytes shape;
    put_len(shape, 1, d1);
    put_len(shape, 1, d2);
    put_len(shape, 1, d3);
    Bytes tensor_type;
    put_tag(tensor_type, 1, 0);
    put_varint(tensor_type, 1);
    put_len(tensor_type, 2, shape);
    Bytes type;
    put_len(type, 1, tensor_type);
    Bytes value_info;
    put_str(value_info, 1, "x");
    put_len(value_info, 2, type);

    Bytes graph;
    put_len(graph, 1, node);
    put_len(graph, 5, unpacked_tensor);
    put_len(graph, 5, packed_tensor);
    put_len(graph, 11, value_info);
    put_len(graph, 15, Bytes{});

    ModelProto m;
    const std::string err = error_of(model_with_graph(graph), "hand.onnx", &m);
    CHECK(err.empty());
    if (!err.empty()) {
        std::fprintf(stderr, "  %s\n", err.c_str());
        return;
    }
    CHECK(m.ir_version == 7);
    const auto& g = m.graph;
    CHECK(g.has_sparse_initializer);
    CHECK(g.initializer.size() == 2);
    if (g.initializer.size() == 2) {
        const auto& u = g.initializer[0];
        const auto& p = g.initializer[1];
        CHECK(u.name == "unpacked");
        CHECK(u.dims == values);
        CHECK(u.int64_data == values);
        CHECK(p.name == "packed");
        CHECK(p.dims == values);
        std::vector<int64_t> appended = values;
        appended.push_back(42);
        CHECK(p.int64_data == appended);
        CHECK((p.int32_data == std::vector<int32_t>{-2, 7}));
        CHECK(p.data_type == tsviz::onnx::kInt32);
        CHECK((p.float_data == std::vector<float>{1.0f, -2.0f, 0.25f}));
        CHECK((p.double_data == std::vector<double>{1.5}));
        CHECK((p.uint64_data == std::vector<uint64_t>{~uint64_t{0}}));
        CHECK(p.external_data.size() == 1);
        if (p.external_data.size() == 1) {
            CHECK(p.external_data[0].key == "location");
            CHECK(p.external_data[0].value == "weights.bin");
        }
        CHECK(p.data_location == 1);
        CHECK(!p.has_segment);
    }
    CHECK(g.node.size() == 1);
    if (g.node.size() == 1) {
        const auto& n = g.node[0];
        CHECK((n.input == std::vector<std::string>{"a", "b"}));
        CHECK((n.output == std::vector<std::string>{"c"}));
        CHECK(n.op_type == "Conv");
        CHECK(n.attribute.size() == 4);
        if (n.attribute.size() == 4) {
            CHECK(n.attribute[0].name == "pads" && n.attribute[0].ints == values);
            CHECK(n.attribute[0].type == tsviz::onnx::kAttrInts);
            CHECK(n.attribute[1].name == "strides" && n.attribute[1].ints == values);
            CHECK(n.attribute[2].has_graph);
            CHECK(n.attribute[3].t.size() == 1);
            if (n.attribute[3].t.size() == 1)
                CHECK((n.attribute[3].t[0].float_data == std::vector<float>{1.0f, -2.0f}));
            CHECK(n.attribute[3].f == 3.0f);
        }
    }
    CHECK(g.input.size() == 1);
    if (g.input.size() == 1) {
        const auto& x = g.input[0];
        CHECK(x.name == "x" && x.has_tensor_type && x.has_shape && x.elem_type == 1);
        CHECK(x.shape.size() == 3);
        if (x.shape.size() == 3) {
            CHECK(x.shape[0].has_value && x.shape[0].value == 16 && x.shape[0].param.empty());
            CHECK(!x.shape[1].has_value && x.shape[1].param == "batch");
            CHECK(!x.shape[2].has_value && x.shape[2].param == "T" && x.shape[2].value == 0);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <model.onnx>\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    const Bytes file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (file.empty()) {
        std::fprintf(stderr, "%s is empty\n", argv[1]);
        return 2;
    }

    test_real_model(file);
    test_tiny_details(file);
    test_truncations(file);
    test_byte_flips(file);
    test_messages();
    test_encodings();

    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
