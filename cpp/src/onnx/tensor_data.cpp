// Tensor data: decoding an ONNX TensorProto (inline or raw bytes, or external data in a file
// beside the model) into a folded constant, and the element types' names.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "onnx/lowering.hpp"

namespace tsviz::onnx {

const char* type_name(int32_t t) {
    switch (t) {
        case kFloat: return "FLOAT";
        case kUint8: return "UINT8";
        case kInt8: return "INT8";
        case kUint16: return "UINT16";
        case kInt16: return "INT16";
        case kInt32: return "INT32";
        case kInt64: return "INT64";
        case kString: return "STRING";
        case kBool: return "BOOL";
        case kFloat16: return "FLOAT16";
        case kDouble: return "DOUBLE";
        case kUint32: return "UINT32";
        case kUint64: return "UINT64";
        case kBfloat16: return "BFLOAT16";
        default: return "UNDEFINED";
    }
}

bool is_int_type(int32_t t) {
    return t == kUint8 || t == kInt8 || t == kUint16 || t == kInt16 || t == kInt32 ||
           t == kInt64 || t == kBool || t == kUint32 || t == kUint64;
}

std::string join(const std::vector<int64_t>& v) {
    constexpr size_t kShown = 16;
    std::string s = "(";
    for (size_t i = 0; i < v.size() && i < kShown; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    if (v.size() > kShown) s += ", ... " + std::to_string(v.size() - kShown) + " more";
    return s + (v.size() == 1 ? ",)" : ")");
}

float to_f32(double v) {
    if (std::fabs(v) > static_cast<double>(std::numeric_limits<float>::max()) && std::isfinite(v))
        return v > 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
    return static_cast<float>(v);
}

Const Lowering::to_const(const TensorProto& t) const {
    const std::string what = "tensor '" + t.name + "'";
    if (t.has_segment) fail(what + ": segmented tensors are not supported");
    Const k;
    k.type = t.data_type;
    k.dims = t.dims;
    int64_t count = 1;
    for (int64_t d : t.dims) {
        if (d < 0) fail(what + ": negative dimension in " + join(t.dims));
        if (d != 0 && count > std::numeric_limits<int32_t>::max() / d)
            fail(what + ": too many elements " + join(t.dims));
        count *= d;
    }
    std::string external;
    const std::string* raw = &t.raw_data;
    if (t.data_location == 1) {
        external = read_external(t, what);
        raw = &external;
    } else if (t.data_location != 0) {
        fail(what + ": data_location " + std::to_string(t.data_location) + " is not defined by ONNX");
    }
    int elem = 0;
    switch (t.data_type) {
        case kFloat: case kInt32: case kUint32: elem = 4; break;
        case kDouble: case kInt64: case kUint64: elem = 8; break;
        case kInt8: case kUint8: case kBool: elem = 1; break;
        case kInt16: case kUint16: elem = 2; break;
        default: fail(what + ": tensor type " + std::string(type_name(t.data_type)) + " is not supported");
    }
    k.v.reserve(static_cast<size_t>(std::min<int64_t>(count, 1 << 26)));
    auto need = [&](int64_t have) {
        if (have != count)
            fail(what + ": holds " + std::to_string(have) + " values; its shape " + join(t.dims) +
                 " needs " + std::to_string(count));
    };
    if (!raw->empty() || (t.data_location == 1)) {
        if (static_cast<int64_t>(raw->size()) != count * elem)
            fail(what + ": raw data of " + std::to_string(raw->size()) + " bytes does not fit shape " +
                 join(t.dims) + " of " + type_name(t.data_type) + " (" + std::to_string(count * elem) + " bytes)");
        const char* p = raw->data();
        for (int64_t i = 0; i < count; ++i, p += elem) {
            switch (t.data_type) {
                case kFloat: { float f; std::memcpy(&f, p, 4); k.v.push_back(f); break; }
                case kDouble: { double d; std::memcpy(&d, p, 8); k.v.push_back(d); break; }
                case kInt32: { int32_t x; std::memcpy(&x, p, 4); k.v.push_back(x); break; }
                case kUint32: { uint32_t x; std::memcpy(&x, p, 4); k.v.push_back(x); break; }
                case kInt64: { int64_t x; std::memcpy(&x, p, 8); k.v.push_back(static_cast<double>(x)); break; }
                case kUint64: { uint64_t x; std::memcpy(&x, p, 8); k.v.push_back(static_cast<double>(x)); break; }
                case kInt16: { int16_t x; std::memcpy(&x, p, 2); k.v.push_back(x); break; }
                case kUint16: { uint16_t x; std::memcpy(&x, p, 2); k.v.push_back(x); break; }
                case kInt8: k.v.push_back(static_cast<int8_t>(*p)); break;
                default: k.v.push_back(static_cast<uint8_t>(*p)); break;
            }
        }
        return k;
    }
    switch (t.data_type) {
        case kFloat: need(static_cast<int64_t>(t.float_data.size())); k.v.assign(t.float_data.begin(), t.float_data.end()); break;
        case kDouble: need(static_cast<int64_t>(t.double_data.size())); k.v.assign(t.double_data.begin(), t.double_data.end()); break;
        case kInt64: need(static_cast<int64_t>(t.int64_data.size())); for (int64_t x : t.int64_data) k.v.push_back(static_cast<double>(x)); break;
        case kUint32: case kUint64: need(static_cast<int64_t>(t.uint64_data.size())); for (uint64_t x : t.uint64_data) k.v.push_back(static_cast<double>(x)); break;
        default: need(static_cast<int64_t>(t.int32_data.size())); k.v.assign(t.int32_data.begin(), t.int32_data.end()); break;
    }
    return k;
}

// A decimal integer of an external-data entry: digits only, no sign, no spaces, no overflow.
static bool parse_decimal(const std::string& text, int64_t& out) {
    if (text.empty() || text.size() > 18) return false;
    out = 0;
    for (char ch : text) {
        if (ch < '0' || ch > '9') return false;
        out = out * 10 + (ch - '0');
    }
    return true;
}

// The external-data entry of a tensor (onnx/external_data_helper.py): `location` a file inside
// the model's folder, `offset` and `length` decimal byte counts within it. Every field is
// checked before the file is opened, and the file before anything is allocated for it.
std::string Lowering::read_external(const TensorProto& t, const std::string& what) const {
    namespace fs = std::filesystem;
    std::string location;
    bool has_location = false;
    int64_t offset = 0, length = -1;
    std::set<std::string> keys;
    for (const auto& e : t.external_data) {
        if (!keys.insert(e.key).second) fail(what + ": external data key '" + e.key + "' is given twice");
        if (e.key == "location") {
            location = e.value;
            has_location = true;
        } else if (e.key == "offset" || e.key == "length") {
            int64_t v = 0;
            if (!parse_decimal(e.value, v))
                fail(what + ": external data " + e.key + " '" + e.value + "' is not a decimal byte count");
            (e.key == "offset" ? offset : length) = v;
        } else if (e.key != "checksum" && e.key != "basepath") {
            fail(what + ": external data key '" + e.key + "' is not defined by ONNX");
        }
    }
    if (!has_location || location.empty()) fail(what + ": its data is external, but the entry names no location");
    if (dir_.empty())
        fail(what + ": its data is stored in an external file ('" + location +
             "'), which a model given as bytes cannot reach; load the model from its path");
    const std::string quoted = "external data location '" + location + "'";
    if (location.find('\0') != std::string::npos) fail(what + ": " + quoted + " contains a NUL byte");
    if (location.find('\\') != std::string::npos)
        fail(what + ": " + quoted + " contains a backslash; use a relative path with '/'");
    const fs::path rel(location);
    if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
        fail(what + ": " + quoted + " is an absolute path; it must be relative to the model's folder");
    for (const auto& part : rel) {
        if (part == "..") fail(what + ": " + quoted + " contains '..'; it must lie inside the model's folder");
    }
    if (rel.filename().empty() || rel.filename() == "." )
        fail(what + ": " + quoted + " names a folder, not a file");
    std::error_code ec;
    const fs::path base = fs::canonical(fs::path(dir_), ec);
    if (ec) fail(what + ": the model's folder cannot be resolved (" + ec.message() + ")");
    const fs::path joined = base / rel;
    if (!fs::exists(joined, ec)) fail(what + ": cannot open external data file '" + location + "': no such file");
    // Symbolic links are followed, and the result must still lie inside the model's folder.
    const fs::path file = fs::canonical(joined, ec);
    if (ec) fail(what + ": cannot open external data file '" + location + "' (" + ec.message() + ")");
    const fs::path inside = file.lexically_relative(base);
    if (inside.empty() || *inside.begin() == ".." || inside == ".")
        fail(what + ": external data file '" + location + "' lies outside the model's folder (it links to " +
             file.string() + ")");
    if (!fs::is_regular_file(file, ec)) fail(what + ": " + quoted + " is not a regular file");
    const uintmax_t file_size = fs::file_size(file, ec);
    if (ec) fail(what + ": cannot read the size of external data file '" + location + "'");
    const int64_t size = static_cast<int64_t>(file_size);
    if (offset > size)
        fail(what + ": external data offset " + std::to_string(offset) + " lies past the end of '" + location +
             "' (" + std::to_string(size) + " bytes)");
    if (length < 0) length = size - offset;
    if (length > size - offset)
        fail(what + ": external data range runs past the end of '" + location + "' (offset " +
             std::to_string(offset) + " + length " + std::to_string(length) + " > " + std::to_string(size) + " bytes)");
    if (static_cast<double>(length) > static_cast<double>(max_memory_))
        fail(what + ": its external data of " + std::to_string(length) + " bytes exceeds the memory limit");
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(what + ": cannot open external data file '" + location + "'");
    std::string bytes(static_cast<size_t>(length), '\0');
    in.seekg(offset);
    in.read(bytes.data(), length);
    if (in.gcount() != length) fail(what + ": cannot read " + std::to_string(length) + " bytes of '" + location + "'");
    return bytes;
}

}  // namespace tsviz::onnx
