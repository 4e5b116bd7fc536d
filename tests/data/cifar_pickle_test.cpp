// The CIFAR unpickler on hand-written pickles whose values are worked out by hand: protocol-0
// text (quoting, escapes, memo), protocol-2 containers and ints, and numpy arrays in both the
// Python 2 (BINSTRING) and Python 3 (_codecs.encode) spellings.
#include <gtest/gtest.h>

#include "dmtrain/data/cifar_pickle.hpp"
#include "dmtrain/util/error.hpp"
#include "support/error_of.hpp"

using namespace dmtrain::data;
using dmtrain::test_support::error_of;
using Kind = PyValue::Kind;

namespace {
// A string literal's bytes, embedded NULs included. (Each pickle below was checked to load, with
// Python's pickle.loads(..., encoding="bytes"), to the value the test expects.)
template <size_t N>
std::string bin(const char (&s)[N]) {
  return std::string(s, N - 1);
}
}  // namespace

TEST(CifarPickle, Protocol0TextDict) {
  // {'a\'bA': 5, "say \"hi\"\n": [True, -7L, 'x']} as Python 2's cPickle.dumps(d, 0) spells it.
  const std::string p =
      "(dp0\nS'a\\'b\\x41'\np1\nI5\nsS'say \"hi\"\\n'\np2\n(lp3\nI01\naL-7L\naS'x'\np4\nasg1\n."
      "";
  // The last "g1\n" pushes the memoised key again, so the stack ends [dict, key]: not a pickle.
  EXPECT_NE(error_of([&] { unpickle(p, "p0"); }).find("STOP"), std::string::npos);
  const std::string ok = p.substr(0, p.size() - 4) + ".";
  const PyRef d = unpickle(ok, "p0");
  ASSERT_EQ(d->kind, Kind::Dict);
  ASSERT_EQ(d->pairs.size(), 2u);
  const PyRef five = d->get("a'bA");
  ASSERT_TRUE(five);
  EXPECT_EQ(five->kind, Kind::Int);
  EXPECT_EQ(five->number, 5);
  const PyRef list = d->get("say \"hi\"\n");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->items.size(), 3u);
  EXPECT_EQ(list->items[0]->kind, Kind::Bool);
  EXPECT_EQ(list->items[0]->number, 1);
  EXPECT_EQ(list->items[1]->number, -7);
  EXPECT_EQ(list->items[2]->bytes, "x");
}

TEST(CifarPickle, Protocol2IntsAndMemo) {
  // {b'k': [1, 300, -2, 70000, 2**40, 'k']} with the key fetched back from the memo (BINGET).
  const std::string p =
      bin("\200\002}q\000U\001kq\001](K\001M,\001J\376\377\377\377Jp\021\001\000\212\006\000\000"
          "\000\000\000\001h\001es.");
  const PyRef d = unpickle(p, "p2");
  const PyRef list = d->get("k");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->items.size(), 6u);
  EXPECT_EQ(list->items[0]->number, 1);
  EXPECT_EQ(list->items[1]->number, 300);
  EXPECT_EQ(list->items[2]->number, -2);
  EXPECT_EQ(list->items[3]->number, 70000);
  EXPECT_EQ(list->items[4]->number, int64_t{1} << 40);
  EXPECT_EQ(list->items[5]->bytes, "k");
}

TEST(CifarPickle, NumpyArrayBothSpellings) {
  // numpy.ndarray of shape (2, 2), dtype u1, data bytes {0, 200, 255, 7}.
  auto array = [](const std::string& module, const std::string& raw_bytes_op) {
    return "\200\002c" + module +
           bin("\n_reconstruct\ncnumpy\nndarray\nK\000\205U\001b\207R("
               "K\001K\002K\002\206cnumpy\ndtyp"
               "e\nU\002u1K\000K\001\207R(K\003U\001|"
               "NNNJ\377\377\377\377J\377\377\377\377K\000tb\211") +
           raw_bytes_op + "tb.";
  };
  const std::string py2_raw = bin("U\004\000\310\377\007");
  // Python 3: _codecs.encode(u'\x00\xc8\xff\x07', 'latin1'), the text in UTF-8.
  const std::string py3_raw = bin(
      "c_codecs\nencode\nX\006\000\000\000\000\303\210\303\277\007X\006\000\000\000latin1\206R");
  for (const auto& [module, raw] : {std::pair{std::string("numpy.core.multiarray"), py2_raw},
                                    std::pair{std::string("numpy._core.multiarray"), py3_raw}}) {
    const PyRef a = unpickle(array(module, raw), module);
    ASSERT_EQ(a->kind, Kind::Array) << module;
    EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(a->dtype, "u1");
    EXPECT_EQ(a->bytes, std::string("\x00\xc8\xff\x07", 4)) << module;
  }
  // A wrong element count is refused.
  const std::string short_raw = bin("U\003\000\310\377");
  EXPECT_NE(error_of([&] {
              unpickle(array("numpy.core.multiarray", short_raw), "a");
            }).find("4 elements holds 3 bytes"),
            std::string::npos);
}

TEST(CifarPickle, RefusesWhatCifarFilesDoNotHold) {
  EXPECT_NE(error_of([] { unpickle("\200\004\225", "p4"); }).find("protocol 4"), std::string::npos);
  const std::string e = error_of([] { unpickle("(dp0\nF1.5\ns.", "float.pkl"); });
  EXPECT_NE(e.find("float.pkl"), std::string::npos) << e;
  EXPECT_NE(e.find("0x46 'F'"), std::string::npos) << e;
  EXPECT_NE(e.find("byte 5"), std::string::npos) << e;
  EXPECT_NE(error_of([] { unpickle("c__builtin__\neval\n.", "g"); }).find("'__builtin__.eval'"),
            std::string::npos);
  EXPECT_NE(error_of([] { unpickle("a.", "g"); }).find("underflow"), std::string::npos);
}
