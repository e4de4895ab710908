// Strict protobuf wire-format decoder for the part of onnx.proto that TSViz reads.
// Every byte is read through a Reader that knows the end of the message it is in, so nothing
// past a declared length (or past the file) is ever touched, and every length is checked
// against the bytes left before anything is allocated for it. Errors name the message and
// field, so a user with a broken export learns where it broke.

#include "onnx/proto.hpp"

#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tsviz/error.hpp"

namespace tsviz::onnx {
namespace {

static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4,
              "float_data is IEEE-754 binary32 on the wire");
static_assert(std::numeric_limits<double>::is_iec559 && sizeof(double) == 8,
              "double_data is IEEE-754 binary64 on the wire");

// The messages TSViz decodes nest at most 7 deep; the limit is a guard should that ever
// change (or a decoder be added for a recursive message), not a practical bound.
constexpr int kMaxDepth = 64;
// A 64-bit value needs at most 10 groups of 7 bits.
constexpr int kMaxVarintBytes = 10;

enum WireType : uint32_t {
    kVarint = 0,
    kFixed64 = 1,
    kLengthDelimited = 2,
    kStartGroup = 3,
    kEndGroup = 4,
    kFixed32 = 5,
};

struct Span {
    size_t begin;
    size_t end;
};

struct Source {
    const uint8_t* data;
    size_t size;
    const std::string* what;
};

// Signed fields arrive as the low bits of a two's-complement varint; memcpy keeps the
// reinterpretation well defined whatever the compiler thinks of out-of-range conversions.
int64_t as_int64(uint64_t v) {
    int64_t out;
    std::memcpy(&out, &v, sizeof out);
    return out;
}

int32_t as_int32(uint64_t v) {
    const uint32_t low = static_cast<uint32_t>(v);
    int32_t out;
    std::memcpy(&out, &low, sizeof out);
    return out;
}

float as_float(uint32_t bits) {
    float out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

double as_double(uint64_t bits) {
    double out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

class Reader {
public:
    Reader(const Source& src, Span span, const char* message, int depth)
        : src_(src), pos_(span.begin), end_(span.end), message_(message), depth_(depth) {}

    // Reads the next tag; false at the end of the message. Groups and wire types 6/7 are
    // refused here so that everything after may assume one of the four plain wire types.
    bool next_field() {
        if (pos_ >= end_) return false;
        tag_offset_ = pos_;
        field_ = 0;
        field_name_ = nullptr;
        const uint64_t tag = read_varint();
        if (tag > std::numeric_limits<uint32_t>::max())
            fail_invalid("tag " + std::to_string(tag) + " out of range in " + message_ +
                         " at offset " + std::to_string(tag_offset_));
        field_ = static_cast<uint32_t>(tag >> 3);
        wire_type_ = static_cast<uint32_t>(tag & 7);
        if (field_ == 0)
            fail_invalid(std::string("field number 0 in ") + message_ + " at offset " +
                         std::to_string(tag_offset_));
        if (wire_type_ == kStartGroup || wire_type_ == kEndGroup)
            fail_invalid(std::string("wire type ") + std::to_string(wire_type_) +
                         " (group) in " + message_ + " field " + std::to_string(field_) +
                         " at offset " + std::to_string(tag_offset_) +
                         "; ONNX never uses protobuf groups");
        if (wire_type_ > kFixed32)
            fail_invalid(std::string("invalid wire type ") + std::to_string(wire_type_) +
                         " in " + message_ + " field " + std::to_string(field_) +
                         " at offset " + std::to_string(tag_offset_));
        return true;
    }

    uint32_t field() const { return field_; }

    void skip_field() {
        switch (wire_type_) {
            case kVarint: read_varint(); break;
            case kFixed64: advance(8); break;
            case kLengthDelimited: read_length_delimited(); break;
            case kFixed32: advance(4); break;
            default: fail_invalid("unreachable wire type");  // refused in next_field
        }
    }

    // Singular scalars.
    uint64_t varint_field(const char* name) {
        expect(kVarint, name);
        return read_varint();
    }
    int64_t int64_field(const char* name) { return as_int64(varint_field(name)); }
    int32_t int32_field(const char* name) { return as_int32(varint_field(name)); }
    float float_field(const char* name) {
        expect(kFixed32, name);
        return as_float(read_fixed32());
    }
    std::string string_field(const char* name) {
        expect(kLengthDelimited, name);
        const Span s = read_length_delimited();
        return std::string(reinterpret_cast<const char*>(src_.data + s.begin), s.end - s.begin);
    }

    // A nested message, returned as a Reader over its payload.
    Reader message_field(const char* name, const char* message) {
        expect(kLengthDelimited, name);
        const Span s = read_length_delimited();
        if (depth_ + 1 > kMaxDepth)
            fail_invalid(std::string("messages nested deeper than ") + std::to_string(kMaxDepth) +
                         " levels at " + message + " (offset " + std::to_string(s.begin) + ")");
        return Reader(src_, s, message, depth_ + 1);
    }

    // A message we only need to know is present (subgraphs, segments, sparse tensors).
    void note_message_field(const char* name) {
        expect(kLengthDelimited, name);
        read_length_delimited();
    }

    // Repeated scalars: proto2 writers emit them one per tag, proto3 writers and fields
    // marked [packed = true] emit one length-delimited run; both are valid, so accept both.
    template <typename T, typename Convert>
    void repeated_varint(const char* name, std::vector<T>& out, Convert convert) {
        if (wire_type_ == kVarint) {
            field_name_ = name;
            out.push_back(convert(read_varint()));
            return;
        }
        expect_packed(kVarint, name);
        Reader run = packed_run();
        // Each varint ends in exactly one byte without the continuation bit, so counting
        // those gives the element count without trusting anything but the bytes present.
        size_t count = 0;
        for (size_t i = run.pos_; i < run.end_; ++i) count += (src_.data[i] & 0x80) == 0;
        out.reserve(out.size() + count);
        while (!run.at_end()) out.push_back(convert(run.read_varint()));
    }

    void repeated_float(const char* name, std::vector<float>& out) {
        if (wire_type_ == kFixed32) {
            field_name_ = name;
            out.push_back(as_float(read_fixed32()));
            return;
        }
        expect_packed(kFixed32, name);
        Reader run = packed_run();
        run.check_multiple(4);
        out.reserve(out.size() + run.remaining() / 4);
        while (!run.at_end()) out.push_back(as_float(run.read_fixed32()));
    }

    void repeated_double(const char* name, std::vector<double>& out) {
        if (wire_type_ == kFixed64) {
            field_name_ = name;
            out.push_back(as_double(read_fixed64()));
            return;
        }
        expect_packed(kFixed64, name);
        Reader run = packed_run();
        run.check_multiple(8);
        out.reserve(out.size() + run.remaining() / 8);
        while (!run.at_end()) out.push_back(as_double(run.read_fixed64()));
    }

private:
    bool at_end() const { return pos_ >= end_; }
    size_t remaining() const { return end_ - pos_; }

    std::string describe_field() const {
        if (field_ == 0) return std::string("tag in ") + message_;  // between fields
        std::string s = std::string(message_) + " field " + std::to_string(field_);
        if (field_name_) s += std::string(" (") + field_name_ + ")";
        return s;
    }

    // The top-level message is where a garbage file shows itself, so errors there say the
    // bytes are not ONNX; deeper down the file evidently is ONNX, just damaged.
    [[noreturn]] void fail_invalid(const std::string& detail) const {
        if (depth_ == 0) throw ModelError(*src_.what + ": not an ONNX model (" + detail + ")");
        throw ModelError(*src_.what + ": malformed ONNX: " + detail);
    }

    // Running past the end of the top-level message is running past the end of the file:
    // truncation. Nested lengths were already checked against their parent, so an overrun
    // there means the file contradicts itself rather than that it was cut short.
    [[noreturn]] void fail_overrun(const std::string& item, size_t need) const {
        const std::string detail = item + " at offset " + std::to_string(pos_) + " needs " +
                                   std::to_string(need) + " bytes, " +
                                   std::to_string(remaining()) + " left";
        if (depth_ == 0) throw ModelError(*src_.what + ": truncated ONNX file (" + detail + ")");
        throw ModelError(*src_.what + ": malformed ONNX: " + detail + " in the enclosing " +
                         message_);
    }

    void expect(uint32_t wire_type, const char* name) {
        field_name_ = name;
        if (wire_type_ != wire_type)
            fail_invalid(describe_field() + " has wire type " + std::to_string(wire_type_) +
                         ", expected " + std::to_string(wire_type) + " at offset " +
                         std::to_string(tag_offset_));
    }

    void expect_packed(uint32_t element_wire_type, const char* name) {
        field_name_ = name;
        if (wire_type_ != kLengthDelimited)
            fail_invalid(describe_field() + " has wire type " + std::to_string(wire_type_) +
                         ", expected " + std::to_string(element_wire_type) + " or 2 (packed)" +
                         " at offset " + std::to_string(tag_offset_));
    }

    Reader packed_run() {
        const Span s = read_length_delimited();
        // A packed run is not a message, but counting it as one level keeps its overruns
        // reported as malformed, with the field named.
        Reader run(src_, s, message_, depth_ + 1);
        run.field_ = field_;
        run.field_name_ = field_name_;
        run.tag_offset_ = tag_offset_;
        return run;
    }

    void check_multiple(size_t width) const {
        if (remaining() % width != 0)
            fail_invalid(describe_field() + " packed length " + std::to_string(remaining()) +
                         " is not a multiple of " + std::to_string(width) + " at offset " +
                         std::to_string(tag_offset_));
    }

    uint64_t read_varint() {
        uint64_t value = 0;
        for (int i = 0; i < kMaxVarintBytes; ++i) {
            if (pos_ >= end_) fail_overrun("varint in " + describe_field(), 1);
            const uint8_t byte = src_.data[pos_++];
            if (i == kMaxVarintBytes - 1) {
                if (byte & 0x80) break;
                // Only bit 63 is left to fill; anything more is not a 64-bit value.
                if (byte > 1)
                    fail_invalid("varint overflows 64 bits in " + describe_field() +
                                 " at offset " + std::to_string(pos_ - kMaxVarintBytes));
            }
            value |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
            if ((byte & 0x80) == 0) return value;
        }
        fail_invalid("varint longer than 10 bytes in " + describe_field() + " at offset " +
                     std::to_string(pos_ - kMaxVarintBytes));
    }

    uint32_t read_fixed32() {
        const uint8_t* p = take(4);
        return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
               static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    }

    uint64_t read_fixed64() {
        const uint8_t* p = take(8);
        uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
        return v;
    }

    Span read_length_delimited() {
        const uint64_t length = read_varint();
        // Compared as uint64 so that a claimed 2^63 cannot wrap when added to pos_.
        if (length > remaining()) fail_overrun(describe_field(), static_cast<size_t>(
                                                   length > std::numeric_limits<size_t>::max()
                                                       ? std::numeric_limits<size_t>::max()
                                                       : length));
        const Span s{pos_, pos_ + static_cast<size_t>(length)};
        pos_ = s.end;
        return s;
    }

    const uint8_t* take(size_t n) {
        if (n > remaining()) fail_overrun(describe_field(), n);
        const uint8_t* p = src_.data + pos_;
        pos_ += n;
        return p;
    }

    void advance(size_t n) { take(n); }

    Source src_;
    size_t pos_;
    size_t end_;
    const char* message_;
    int depth_;
    uint32_t field_ = 0;
    uint32_t wire_type_ = 0;
    size_t tag_offset_ = 0;
    const char* field_name_ = nullptr;
};

uint64_t as_uint64(uint64_t v) { return v; }

// Each parse_* decodes into an existing object rather than returning a new one: protobuf
// merges a singular message field that occurs twice, and decoding in place gives exactly
// that (repeated fields append, scalars take the last value).

void parse_string_entry(Reader& r, StringEntry& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: out.key = r.string_field("key"); break;
            case 2: out.value = r.string_field("value"); break;
            default: r.skip_field();
        }
    }
}

void parse_tensor(Reader& r, TensorProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: r.repeated_varint("dims", out.dims, as_int64); break;
            case 2: out.data_type = r.int32_field("data_type"); break;
            case 3: r.note_message_field("segment"); out.has_segment = true; break;
            case 4: r.repeated_float("float_data", out.float_data); break;
            case 5: r.repeated_varint("int32_data", out.int32_data, as_int32); break;
            case 7: r.repeated_varint("int64_data", out.int64_data, as_int64); break;
            case 8: out.name = r.string_field("name"); break;
            case 9: out.raw_data = r.string_field("raw_data"); break;
            case 10: r.repeated_double("double_data", out.double_data); break;
            case 11: r.repeated_varint("uint64_data", out.uint64_data, as_uint64); break;
            case 13: {
                Reader sub = r.message_field("external_data", "StringStringEntryProto");
                out.external_data.emplace_back();
                parse_string_entry(sub, out.external_data.back());
                break;
            }
            case 14: out.data_location = r.int32_field("data_location"); break;
            default: r.skip_field();
        }
    }
}

void parse_attribute(Reader& r, AttributeProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: out.name = r.string_field("name"); break;
            case 2: out.f = r.float_field("f"); break;
            case 3: out.i = r.int64_field("i"); break;
            case 4: out.s = r.string_field("s"); break;
            case 5: {
                Reader sub = r.message_field("t", "TensorProto");
                if (out.t.empty()) out.t.emplace_back();
                parse_tensor(sub, out.t.front());
                break;
            }
            case 6: r.note_message_field("g"); out.has_graph = true; break;
            case 7: r.repeated_float("floats", out.floats); break;
            case 8: r.repeated_varint("ints", out.ints, as_int64); break;
            case 9: out.strings.push_back(r.string_field("strings")); break;
            case 11: r.note_message_field("graphs"); out.has_graph = true; break;
            case 20: out.type = r.int32_field("type"); break;
            case 21: out.ref_attr_name = r.string_field("ref_attr_name"); break;
            default: r.skip_field();
        }
    }
}

void parse_node(Reader& r, NodeProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: out.input.push_back(r.string_field("input")); break;
            case 2: out.output.push_back(r.string_field("output")); break;
            case 3: out.name = r.string_field("name"); break;
            case 4: out.op_type = r.string_field("op_type"); break;
            case 5: {
                Reader sub = r.message_field("attribute", "AttributeProto");
                out.attribute.emplace_back();
                parse_attribute(sub, out.attribute.back());
                break;
            }
            case 7: out.domain = r.string_field("domain"); break;
            default: r.skip_field();
        }
    }
}

void parse_dimension(Reader& r, Dimension& out) {
    while (r.next_field()) {
        switch (r.field()) {
            // dim_value and dim_param are a oneof: the last one on the wire wins.
            case 1:
                out.value = r.int64_field("dim_value");
                out.has_value = true;
                out.param.clear();
                break;
            case 2:
                out.param = r.string_field("dim_param");
                out.has_value = false;
                out.value = 0;
                break;
            default: r.skip_field();
        }
    }
}

void parse_shape(Reader& r, ValueInfoProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: {
                Reader sub = r.message_field("dim", "TensorShapeProto.Dimension");
                out.shape.emplace_back();
                parse_dimension(sub, out.shape.back());
                break;
            }
            default: r.skip_field();
        }
    }
}

void parse_tensor_type(Reader& r, ValueInfoProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: out.elem_type = r.int32_field("elem_type"); break;
            case 2: {
                Reader sub = r.message_field("shape", "TensorShapeProto");
                out.has_shape = true;
                parse_shape(sub, out);
                break;
            }
            default: r.skip_field();
        }
    }
}

void parse_type(Reader& r, ValueInfoProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: {
                Reader sub = r.message_field("tensor_type", "TypeProto.Tensor");
                out.has_tensor_type = true;
                parse_tensor_type(sub, out);
                break;
            }
            // The other members of TypeProto's `value` oneof: a later one replaces the
            // tensor type, so a sequence or map is never mistaken for a tensor.
            case 4: case 5: case 8: case 9:
                r.note_message_field("value");
                out.has_tensor_type = false;
                out.elem_type = 0;
                out.has_shape = false;
                out.shape.clear();
                break;
            default: r.skip_field();
        }
    }
}

void parse_value_info(Reader& r, ValueInfoProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: out.name = r.string_field("name"); break;
            case 2: {
                Reader sub = r.message_field("type", "TypeProto");
                parse_type(sub, out);
                break;
            }
            default: r.skip_field();
        }
    }
}

void parse_value_infos(Reader& r, const char* name, std::vector<ValueInfoProto>& out) {
    Reader sub = r.message_field(name, "ValueInfoProto");
    out.emplace_back();
    parse_value_info(sub, out.back());
}

void parse_graph(Reader& r, GraphProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: {
                Reader sub = r.message_field("node", "NodeProto");
                out.node.emplace_back();
                parse_node(sub, out.node.back());
                break;
            }
            case 2: out.name = r.string_field("name"); break;
            case 5: {
                Reader sub = r.message_field("initializer", "TensorProto");
                out.initializer.emplace_back();
                parse_tensor(sub, out.initializer.back());
                break;
            }
            case 11: parse_value_infos(r, "input", out.input); break;
            case 12: parse_value_infos(r, "output", out.output); break;
            case 13: parse_value_infos(r, "value_info", out.value_info); break;
            case 15:
                r.note_message_field("sparse_initializer");
                out.has_sparse_initializer = true;
                break;
            default: r.skip_field();
        }
    }
}

void parse_opset(Reader& r, OperatorSetId& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: out.domain = r.string_field("domain"); break;
            case 2: out.version = r.int64_field("version"); break;
            default: r.skip_field();
        }
    }
}

void parse_model_message(Reader& r, ModelProto& out) {
    while (r.next_field()) {
        switch (r.field()) {
            case 1: out.ir_version = r.int64_field("ir_version"); break;
            case 2: out.producer_name = r.string_field("producer_name"); break;
            case 3: out.producer_version = r.string_field("producer_version"); break;
            case 7: {
                Reader sub = r.message_field("graph", "GraphProto");
                out.has_graph = true;
                parse_graph(sub, out.graph);
                break;
            }
            case 8: {
                Reader sub = r.message_field("opset_import", "OperatorSetIdProto");
                out.opset_import.emplace_back();
                parse_opset(sub, out.opset_import.back());
                break;
            }
            default: r.skip_field();
        }
    }
}

}  // namespace

ModelProto parse_model(const uint8_t* data, size_t size, const std::string& what) {
    if (size == 0) throw ModelError(what + ": not an ONNX model (empty)");
    if (data == nullptr) throw ModelError(what + ": not an ONNX model (no data)");
    try {
        const Source src{data, size, &what};
        Reader reader(src, Span{0, size}, "ModelProto", 0);
        ModelProto model;
        parse_model_message(reader, model);
        // Almost any byte string is a valid protobuf of *some* message; a ModelProto without
        // a graph is what most non-ONNX files decode to, so it is refused as not ONNX.
        if (!model.has_graph) throw ModelError(what + ": not an ONNX model (no graph)");
        return model;
    } catch (const std::bad_alloc&) {
        throw ModelError(what + ": out of memory while decoding the ONNX model");
    } catch (const std::length_error&) {
        throw ModelError(what + ": out of memory while decoding the ONNX model");
    }
}

}  // namespace tsviz::onnx
