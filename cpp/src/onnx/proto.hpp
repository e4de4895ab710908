// A strict, dependency-free decoder of the protobuf wire format for the ONNX messages TSViz
// needs (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto).
// Why not libprotobuf: embedded users get no version clash with their own protobuf, the build
// needs nothing from outside, and every read is bounds-checked so a malformed or hostile file
// can neither crash the reader nor make it allocate more than the file's own size.
// Unknown fields are skipped (forward compatible); fields we need with a wrong wire type are
// refused with a ModelError naming the message and field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tsviz::onnx {

// onnx.TensorProto.DataType
enum DataType : int32_t {
    kUndefined = 0, kFloat = 1, kUint8 = 2, kInt8 = 3, kUint16 = 4, kInt16 = 5, kInt32 = 6,
    kInt64 = 7, kString = 8, kBool = 9, kFloat16 = 10, kDouble = 11, kUint32 = 12, kUint64 = 13,
    kBfloat16 = 16,
};

struct StringEntry {
    std::string key;
    std::string value;
};

struct TensorProto {
    std::vector<int64_t> dims;
    int32_t data_type = 0;
    std::string name;
    std::vector<float> float_data;     // field 4
    std::vector<int32_t> int32_data;   // field 5 (also holds bool/int8/uint8/int16/float16 bits)
    std::vector<int64_t> int64_data;   // field 7
    std::vector<double> double_data;   // field 10
    std::vector<uint64_t> uint64_data; // field 11
    std::string raw_data;              // field 9
    std::vector<StringEntry> external_data;  // field 13
    int32_t data_location = 0;         // field 14: 0 DEFAULT, 1 EXTERNAL
    bool has_segment = false;          // field 3: segmented tensors are refused by the importer
};

struct GraphProto;

enum AttributeType : int32_t {
    kAttrUndefined = 0, kAttrFloat = 1, kAttrInt = 2, kAttrString = 3, kAttrTensor = 4,
    kAttrGraph = 5, kAttrFloats = 6, kAttrInts = 7, kAttrStrings = 8, kAttrTensors = 9,
    kAttrGraphs = 10,
};

struct AttributeProto {
    std::string name;
    int32_t type = 0;                 // field 20 (AttributeType); 0 when absent
    float f = 0.f;                    // field 2
    int64_t i = 0;                    // field 3
    std::string s;                    // field 4
    std::vector<TensorProto> t;       // field 5: zero or one element
    bool has_graph = false;           // fields 6 / 11: subgraphs are not decoded, only noted
    std::vector<float> floats;        // field 7 (packed or not)
    std::vector<int64_t> ints;        // field 8 (packed or not)
    std::vector<std::string> strings; // field 9
    std::string ref_attr_name;        // field 21
};

struct NodeProto {
    std::vector<std::string> input;   // field 1
    std::vector<std::string> output;  // field 2
    std::string name;                 // field 3
    std::string op_type;              // field 4
    std::string domain;               // field 7
    std::vector<AttributeProto> attribute;  // field 5
};

struct Dimension {
    bool has_value = false;
    int64_t value = 0;   // dim_value (field 1)
    std::string param;   // dim_param (field 2)
};

struct ValueInfoProto {
    std::string name;           // field 1
    bool has_tensor_type = false;
    int32_t elem_type = 0;      // type(2).tensor_type(1).elem_type(1)
    bool has_shape = false;     // tensor_type.shape (field 2) present
    std::vector<Dimension> shape;
};

struct GraphProto {
    std::string name;                        // field 2
    std::vector<NodeProto> node;             // field 1
    std::vector<TensorProto> initializer;    // field 5
    std::vector<ValueInfoProto> input;       // field 11
    std::vector<ValueInfoProto> output;      // field 12
    std::vector<ValueInfoProto> value_info;  // field 13
    bool has_sparse_initializer = false;     // field 15: refused by the importer
};

struct OperatorSetId {
    std::string domain;  // field 1
    int64_t version = 0; // field 2
};

struct ModelProto {
    int64_t ir_version = 0;                  // field 1
    std::vector<OperatorSetId> opset_import; // field 8
    std::string producer_name;               // field 2
    std::string producer_version;            // field 3
    bool has_graph = false;
    GraphProto graph;                        // field 7
};

// Decodes a serialized ModelProto. Throws tsviz::ModelError whose message starts with
// `what` (e.g. the file name) and says what is wrong: "not an ONNX model", "truncated",
// the message and field with a bad wire type, a length that runs past the end, nesting
// deeper than 64 levels. Never reads out of bounds; allocations are bounded by `size`.
ModelProto parse_model(const uint8_t* data, size_t size, const std::string& what);

}  // namespace tsviz::onnx
