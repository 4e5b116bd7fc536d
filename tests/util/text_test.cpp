// util/text.hpp: a command-line number is read whole or not at all.
#include <gtest/gtest.h>

#include "dmtrain/util/text.hpp"

using dmtrain::util::parse_number;

TEST(Text, ParseNumberTakesWholeNumbersOnly) {
  EXPECT_EQ(parse_number("0.05"), 0.05);
  EXPECT_EQ(parse_number("1e-3"), 1e-3);
  EXPECT_EQ(parse_number("-2"), -2.0);
  for (const char* bad : {"", "x", "0.05x", "0.05 ", "1,2"}) {
    EXPECT_FALSE(parse_number(bad).has_value()) << "'" << bad << "'";
  }
}
