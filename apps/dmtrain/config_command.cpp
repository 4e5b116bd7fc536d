// dmtrain config keys [--format text|markdown]: every config key with its type, default, allowed
// values and meaning, in schema order by section. Everything printed comes from the schema
// (config/schema.hpp); the markdown is docs/config.md byte for byte, so the same command
// regenerates that file: dmtrain config keys --format markdown > docs/config.md
#include <iostream>
#include <string>

#include "commands.hpp"
#include "dmtrain/config/schema.hpp"

namespace dmtrain::app {
namespace {

std::string g_format = "text";

}  // namespace

void add_config_command(CLI::App& app) {
  auto* cfg = app.add_subcommand("config", "Describe the run configuration's keys");
  cfg->require_subcommand(1);
  auto* keys = cfg->add_subcommand(
      "keys", "Every config key with its type, default, allowed values and meaning");
  keys->add_option("--format", g_format, "text, or markdown (what docs/config.md holds)")
      ->check(CLI::IsMember({"text", "markdown"}))
      ->capture_default_str();
  keys->callback([] {
    std::cout << (g_format == "markdown" ? config::keys_markdown() : config::keys_text());
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
