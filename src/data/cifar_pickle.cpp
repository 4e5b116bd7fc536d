#include "dmtrain/data/cifar_pickle.hpp"

#include <cstring>
#include <unordered_map>

#include "dmtrain/util/error.hpp"

namespace dmtrain::data {
namespace {

using Kind = PyValue::Kind;

PyRef make(Kind kind) {
  auto v = std::make_shared<PyValue>();
  v->kind = kind;
  return v;
}

PyRef make_int(Kind kind, int64_t n) {
  PyRef v = make(kind);
  v->number = n;
  return v;
}

PyRef make_str(Kind kind, std::string s) {
  PyRef v = make(kind);
  v->bytes = std::move(s);
  return v;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Bytes:
      return "bytes";
    case Kind::Text:
      return "str";
    case Kind::List:
      return "list";
    case Kind::Tuple:
      return "tuple";
    case Kind::Dict:
      return "dict";
    case Kind::Array:
      return "numpy array";
    case Kind::Dtype:
      return "numpy dtype";
    case Kind::Global:
      return "global";
  }
  return "?";
}

class Unpickler {
 public:
  Unpickler(const std::string& data, const std::string& what) : d_(data), what_(what) {}

  PyRef run() {
    while (pos_ < d_.size()) {
      op_at_ = pos_;
      op_ = static_cast<unsigned char>(d_[pos_++]);
      if (step()) {
        if (stack_.size() != 1 || !marks_.empty()) fail("STOP with a malformed stack");
        return stack_.back();
      }
    }
    throw Error(c10_str("pickle '", what_, "' ends before its STOP opcode (truncated file?)"));
  }

 private:
  template <class... A>
  static std::string c10_str(const A&... a) {
    std::string s;
    ((s += to_s(a)), ...);
    return s;
  }
  static std::string to_s(const std::string& s) { return s; }
  static std::string to_s(const char* s) { return s; }
  template <class T>
  static std::string to_s(T v) {
    return std::to_string(v);
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw Error(
        c10_str("pickle '", what_, "': ", why, " (opcode ", op_desc(), " at byte ", op_at_, ")"));
  }
  std::string op_desc() const {
    static const char* hex = "0123456789abcdef";
    std::string s = "0x";
    s += hex[op_ >> 4];
    s += hex[op_ & 15];
    if (op_ >= 0x20 && op_ < 0x7f) s += c10_str(" '", std::string(1, static_cast<char>(op_)), "'");
    return s;
  }

  // ---- raw reads
  const char* take(size_t n) {
    if (d_.size() - pos_ < n) {
      throw Error(c10_str("pickle '", what_, "' is truncated: opcode ", op_desc(), " at byte ",
                          op_at_, " needs ", n, " more bytes"));
    }
    const char* p = d_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint64_t le(size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(take(n));
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
  }
  std::string line() {
    const size_t end = d_.find('\n', pos_);
    if (end == std::string::npos) take(d_.size() - pos_ + 1);  // throws: truncated
    std::string s = d_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  int64_t decimal(const std::string& s) {
    size_t i = 0;
    bool neg = false;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == s.size()) fail(c10_str("'", s, "' is not a decimal integer"));
    int64_t v = 0;
    for (; i < s.size(); ++i) {
      if (s[i] == 'L' && i + 1 == s.size()) break;
      if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10) {
        fail(c10_str("'", s, "' is not a decimal integer this reader takes"));
      }
      v = v * 10 + (s[i] - '0');
    }
    return neg ? -v : v;
  }

  // ---- stack
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back())) {
      fail("stack underflow");
    }
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyRef& top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PyRef& expect(PyRef& v, Kind k) {
    if (v->kind != k) fail(c10_str("expected a ", kind_name(k), ", found a ", kind_name(v->kind)));
    return v;
  }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  void put(uint64_t key) { memo_[key] = top(); }
  void get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail(c10_str("memo key ", key, " was never stored"));
    push(it->second);
  }

  // Python 2 repr of a str: quoted with ' or ", escapes \\ \' \" \n \r \t \a \b \f \v \xhh \ooo.
  std::string unquote(const std::string& s) {
    if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front()) {
      fail("STRING argument is not a quoted string");
    }
    std::string out;
    for (size_t i = 1; i + 1 < s.size(); ++i) {
      if (s[i] != '\\') {
        out += s[i];
        continue;
      }
      if (++i >= s.size() - 1) fail("STRING ends inside an escape");
      const char c = s[i];
      auto hexval = [&](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        fail("bad \\x escape in STRING");
      };
      switch (c) {
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          if (i + 3 >= s.size()) fail("bad \\x escape in STRING");
          out += static_cast<char>(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
          i += 2;
          break;
        default:
          if (c >= '0' && c <= '7') {
            int v = 0, k = 0;
            for (; k < 3 && i + k + 1 < s.size() && s[i + k] >= '0' && s[i + k] <= '7'; ++k) {
              v = v * 8 + (s[i + k] - '0');
            }
            out += static_cast<char>(v);
            i += k - 1;
          } else {
            fail(c10_str("unknown escape '\\", std::string(1, c), "' in STRING"));
          }
      }
    }
    return out;
  }

  // UTF-8 text -> the bytes of its latin-1 encoding (every code point must be < 256).
  std::string latin1(const std::string& utf8) {
    std::string out;
    for (size_t i = 0; i < utf8.size(); ++i) {
      const auto c = static_cast<unsigned char>(utf8[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xE0) == 0xC0 && i + 1 < utf8.size()) {
        const unsigned cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3Fu);
        if (cp > 0xFF) fail("_codecs.encode(..., 'latin1') of a character above U+00FF");
        out += static_cast<char>(cp);
      } else {
        fail("_codecs.encode(..., 'latin1') of a character above U+00FF");
      }
    }
    return out;
  }

  static bool is_str(const PyRef& v) { return v->kind == Kind::Bytes || v->kind == Kind::Text; }

  PyRef reduce(const PyRef& fn, const PyRef& args) {
    if (fn->kind != Kind::Global) fail("REDUCE of something that is not a known global");
    if (args->kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    const std::string& g = fn->bytes;
    if (g == "numpy.core.multiarray._reconstruct" || g == "numpy._core.multiarray._reconstruct") {
      if (a.size() != 3 || a[0]->kind != Kind::Global || a[0]->bytes != "numpy.ndarray") {
        fail("_reconstruct of something other than numpy.ndarray");
      }
      return make(Kind::Array);  // filled by BUILD
    }
    if (g == "numpy.dtype") {
      if (a.empty() || !is_str(a[0])) fail("numpy.dtype without a type string");
      PyRef v = make(Kind::Dtype);
      v->dtype = a[0]->bytes;
      return v;
    }
    if (g == "_codecs.encode") {
      if (a.size() != 2 || a[0]->kind != Kind::Text || !is_str(a[1])) {
        fail("_codecs.encode with arguments other than (str, encoding)");
      }
      const std::string& enc = a[1]->bytes;
      if (enc != "latin1" && enc != "latin-1" && enc != "iso-8859-1") {
        fail(c10_str("_codecs.encode to '", enc, "' (only latin1)"));
      }
      return make_str(Kind::Bytes, latin1(a[0]->bytes));
    }
    if (g == "__builtin__.bytes" || g == "builtins.bytes") {
      if (!a.empty()) fail("bytes(...) with arguments");
      return make_str(Kind::Bytes, "");
    }
    fail(c10_str("REDUCE of ", g));
  }

  void build(PyRef& obj, const PyRef& state) {
    if (obj->kind == Kind::Dtype) return;  // (3, '|', None, ...): byte order etc., moot for u1
    if (obj->kind != Kind::Array || !obj->dtype.empty() || !obj->shape.empty()) {
      fail(c10_str("BUILD of a ", kind_name(obj->kind)));
    }
    if (state->kind != Kind::Tuple) fail("numpy array state is not a tuple");
    std::vector<PyRef> s = state->items;
    if (s.size() == 5) s.erase(s.begin());  // version
    if (s.size() != 4 || s[0]->kind != Kind::Tuple || s[1]->kind != Kind::Dtype ||
        (s[2]->kind != Kind::Bool && s[2]->kind != Kind::Int) || !is_str(s[3])) {
      fail("numpy array state is not (version, shape, dtype, is_fortran, raw bytes)");
    }
    int64_t count = 1;
    for (const PyRef& d : s[0]->items) {
      if (d->kind != Kind::Int || d->number < 0) fail("numpy array shape is not a tuple of ints");
      obj->shape.push_back(d->number);
      count *= d->number;
    }
    obj->dtype = s[1]->dtype;
    if (obj->dtype != "u1") {
      fail(c10_str("numpy array of dtype '", obj->dtype, "' (only uint8 'u1' is read)"));
    }
    if (s[2]->number != 0 && obj->shape.size() > 1) fail("Fortran-order numpy array");
    if (s[3]->kind == Kind::Text) fail("numpy array data as str (expected bytes)");
    if (static_cast<int64_t>(s[3]->bytes.size()) != count) {
      fail(c10_str("numpy array of ", count, " elements holds ", s[3]->bytes.size(), " bytes"));
    }
    obj->bytes = s[3]->bytes;
  }

  // Executes op_; returns true at STOP.
  bool step() {
    switch (op_) {
      case 0x80: {  // PROTO
        const auto proto = le(1);
        if (proto > 3) fail(c10_str("pickle protocol ", proto, " (this reader takes 0 to 3)"));
        return false;
      }
      case '.':
        return true;  // STOP
      case '(':
        marks_.push_back(stack_.size());
        return false;
      case '}':
        push(make(Kind::Dict));
        return false;
      case ']':
        push(make(Kind::List));
        return false;
      case ')':
        push(make(Kind::Tuple));
        return false;
      case 'N':
        push(make(Kind::None));
        return false;
      case 0x88:
        push(make_int(Kind::Bool, 1));
        return false;
      case 0x89:
        push(make_int(Kind::Bool, 0));
        return false;
      case 'K':
        push(make_int(Kind::Int, static_cast<int64_t>(le(1))));
        return false;
      case 'M':
        push(make_int(Kind::Int, static_cast<int64_t>(le(2))));
        return false;
      case 'J':
        push(make_int(Kind::Int, static_cast<int32_t>(le(4))));
        return false;
      case 0x8a: {  // LONG1
        const auto n = le(1);
        if (n > 8) fail("LONG1 wider than 64 bits");
        uint64_t v = n == 0 ? 0 : le(n);
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
        push(make_int(Kind::Int, static_cast<int64_t>(v)));
        return false;
      }
      case 'I': {  // INT (protocol 0): "00" / "01" are False / True
        const std::string s = line();
        if (s == "00" || s == "01") {
          push(make_int(Kind::Bool, s == "01"));
        } else {
          push(make_int(Kind::Int, decimal(s)));
        }
        return false;
      }
      case 'L':
        push(make_int(Kind::Int, decimal(line())));
        return false;
      case 'S':
        push(make_str(Kind::Bytes, unquote(line())));
        return false;
      case 'U': {
        const auto n = le(1);
        push(make_str(Kind::Bytes, std::string(take(n), n)));
        return false;
      }
      case 'C': {
        const auto n = le(1);
        push(make_str(Kind::Bytes, std::string(take(n), n)));
        return false;
      }
      case 'T': {
        const auto n = static_cast<int32_t>(le(4));
        if (n < 0) fail("BINSTRING with a negative length");
        push(make_str(Kind::Bytes, std::string(take(static_cast<size_t>(n)), n)));
        return false;
      }
      case 'B': {
        const auto n = le(4);
        push(make_str(Kind::Bytes, std::string(take(n), n)));
        return false;
      }
      case 'X': {
        const auto n = le(4);
        push(make_str(Kind::Text, std::string(take(n), n)));
        return false;
      }
      case 'c': {
        const std::string module = line();
        const std::string name = line();
        const std::string g = module + "." + name;
        static const char* allowed[] = {"numpy.core.multiarray._reconstruct",
                                        "numpy._core.multiarray._reconstruct",
                                        "numpy.ndarray",
                                        "numpy.dtype",
                                        "_codecs.encode",
                                        "__builtin__.bytes",
                                        "builtins.bytes"};
        bool ok = false;
        for (const char* a : allowed) ok = ok || g == a;
        if (!ok) fail(c10_str("global '", g, "' (not part of a CIFAR file)"));
        push(make_str(Kind::Global, g));
        return false;
      }
      case 'R': {
        PyRef args = pop();
        PyRef fn = pop();
        push(reduce(fn, args));
        return false;
      }
      case 'b': {
        PyRef state = pop();
        build(top(), state);
        return false;
      }
      case 't': {
        PyRef v = make(Kind::Tuple);
        v->items = pop_mark();
        push(v);
        return false;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        PyRef v = make(Kind::Tuple);
        v->items.resize(op_ - 0x84);
        for (size_t i = v->items.size(); i-- > 0;) v->items[i] = pop();
        push(v);
        return false;
      }
      case 'l': {
        PyRef v = make(Kind::List);
        v->items = pop_mark();
        push(v);
        return false;
      }
      case 'd': {
        const std::vector<PyRef> kv = pop_mark();
        if (kv.size() % 2) fail("DICT with an odd number of items");
        PyRef v = make(Kind::Dict);
        for (size_t i = 0; i < kv.size(); i += 2) v->pairs.emplace_back(kv[i], kv[i + 1]);
        push(v);
        return false;
      }
      case 'a': {
        PyRef x = pop();
        expect(top(), Kind::List)->items.push_back(x);
        return false;
      }
      case 'e': {
        std::vector<PyRef> xs = pop_mark();
        auto& items = expect(top(), Kind::List)->items;
        items.insert(items.end(), xs.begin(), xs.end());
        return false;
      }
      case 's': {
        PyRef v = pop();
        PyRef k = pop();
        expect(top(), Kind::Dict)->pairs.emplace_back(k, v);
        return false;
      }
      case 'u': {
        const std::vector<PyRef> kv = pop_mark();
        if (kv.size() % 2) fail("SETITEMS with an odd number of items");
        auto& pairs = expect(top(), Kind::Dict)->pairs;
        for (size_t i = 0; i < kv.size(); i += 2) pairs.emplace_back(kv[i], kv[i + 1]);
        return false;
      }
      case 'p':
        put(static_cast<uint64_t>(decimal(line())));
        return false;
      case 'q':
        put(le(1));
        return false;
      case 'r':
        put(le(4));
        return false;
      case 'g':
        get(static_cast<uint64_t>(decimal(line())));
        return false;
      case 'h':
        get(le(1));
        return false;
      case 'j':
        get(le(4));
        return false;
      default:
        fail(
            "an opcode this reader does not take (CIFAR files hold only dicts, lists, ints, "
            "strings and uint8 numpy arrays)");
    }
  }

  const std::string& d_;
  const std::string& what_;
  size_t pos_ = 0, op_at_ = 0;
  unsigned op_ = 0;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
};

}  // namespace

PyRef PyValue::get(const std::string& name) const {
  for (const auto& [k, v] : pairs) {
    if ((k->kind == Kind::Bytes || k->kind == Kind::Text) && k->bytes == name) return v;
  }
  return nullptr;
}

PyRef unpickle(const std::string& data, const std::string& what) {
  return Unpickler(data, what).run();
}

}  // namespace dmtrain::data
