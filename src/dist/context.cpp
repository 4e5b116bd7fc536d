#include "dmtrain/dist/context.hpp"

#include <sstream>

#include "dmtrain/util/error.hpp"

namespace dmtrain::dist {
namespace {

[[noreturn]] void fail(const std::string& variable, const std::string& value,
                       const std::string& expected) {
  std::ostringstream os;
  os << "distributed environment: " << variable << "='" << value << "': expected " << expected;
  throw Error(os.str());
}

// Strict non-negative decimal (the whole string); the launchers never write anything else.
int64_t parse_int(const std::string& variable, const std::string& value) {
  if (value.empty() || value.size() > 12) fail(variable, value, "a non-negative integer");
  int64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') fail(variable, value, "a non-negative integer");
    v = v * 10 + (c - '0');
  }
  return v;
}

struct Env {
  const Getenv& getenv;
  bool has(const char* name) const { return getenv(name) != nullptr; }
  std::string str(const char* name) const {
    const char* v = getenv(name);
    return v ? std::string(v) : std::string();
  }
  int integer(const char* name) const {
    const int64_t v = parse_int(name, str(name));
    if (v > 1000000000) fail(name, str(name), "an integer below 1e9");
    return static_cast<int>(v);
  }
  int port(const char* name) const {
    const int v = integer(name);
    if (v < 1 || v > 65535) fail(name, str(name), "a TCP port in 1..65535");
    return v;
  }
};

void check_world(const Context& c, const char* rank_var, const char* world_var) {
  if (c.world_size < 1) fail(world_var, std::to_string(c.world_size), "at least 1");
  if (c.rank >= c.world_size)
    fail(rank_var, std::to_string(c.rank),
         "a rank below " + std::string(world_var) + "=" + std::to_string(c.world_size));
}

void check_ranks(const Context& c, const char* rank_var, const char* world_var,
                 const char* local_var, const char* local_world_var) {
  check_world(c, rank_var, world_var);
  if (c.local_world_size < 1 || c.local_world_size > c.world_size)
    fail(local_world_var, std::to_string(c.local_world_size),
         "1.." + std::string(world_var) + "=" + std::to_string(c.world_size));
  if (c.local_rank >= c.local_world_size)
    fail(local_var, std::to_string(c.local_rank),
         "a local rank below " + std::string(local_world_var) + "=" +
             std::to_string(c.local_world_size));
}

Context from_torchrun(const Env& env) {
  if (!env.has("RANK")) fail("RANK", "", "set, since WORLD_SIZE is set (torchrun sets both)");
  if (!env.has("WORLD_SIZE")) fail("WORLD_SIZE", "", "set, since RANK is set (torchrun sets both)");
  Context c;
  c.source = "torchrun";
  c.rank = env.integer("RANK");
  c.world_size = env.integer("WORLD_SIZE");
  c.local_rank = env.has("LOCAL_RANK") ? env.integer("LOCAL_RANK") : c.rank;
  c.local_world_size = env.has("LOCAL_WORLD_SIZE") ? env.integer("LOCAL_WORLD_SIZE") : c.world_size;
  check_ranks(c, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE");
  c.node_rank = env.has("GROUP_RANK") ? env.integer("GROUP_RANK") : c.rank / c.local_world_size;
  if (env.has("MASTER_ADDR")) {
    c.master_addr = env.str("MASTER_ADDR");
    if (c.master_addr.empty()) fail("MASTER_ADDR", "", "a host name or address");
  } else if (c.world_size > 1) {
    fail("MASTER_ADDR", "<unset>",
         "the rendezvous host, since WORLD_SIZE=" + std::to_string(c.world_size) + " > 1");
  }
  if (env.has("MASTER_PORT")) {
    c.master_port = env.port("MASTER_PORT");
  } else if (c.world_size > 1) {
    fail("MASTER_PORT", "<unset>",
         "the rendezvous port, since WORLD_SIZE=" + std::to_string(c.world_size) + " > 1");
  }
  return c;
}

Context from_slurm(const Env& env) {
  if (!env.has("SLURM_NTASKS")) fail("SLURM_NTASKS", "<unset>", "set, since SLURM_PROCID is set");
  Context c;
  c.source = "slurm";
  c.rank = env.integer("SLURM_PROCID");
  c.world_size = env.integer("SLURM_NTASKS");
  c.local_rank = env.has("SLURM_LOCALID") ? env.integer("SLURM_LOCALID") : 0;
  // Rank against world first: the node lookup below assumes a valid rank.
  check_world(c, "SLURM_PROCID", "SLURM_NTASKS");
  std::vector<int> per_node;
  const char* per_node_var = "SLURM_NTASKS_PER_NODE";
  if (env.has("SLURM_NTASKS_PER_NODE")) {
    per_node = {env.integer("SLURM_NTASKS_PER_NODE")};
  } else if (env.has("SLURM_TASKS_PER_NODE")) {
    per_node_var = "SLURM_TASKS_PER_NODE";
    per_node = expand_tasks_per_node(env.str("SLURM_TASKS_PER_NODE"), per_node_var);
  } else {
    per_node = {c.world_size};
  }
  if (env.has("SLURM_NODEID")) {
    c.node_rank = env.integer("SLURM_NODEID");
  } else {
    // Block distribution (Slurm's default): node n holds ranks sum(per_node[<n]) ...
    int first = 0;
    c.node_rank = 0;
    for (size_t n = 0; n < per_node.size(); ++n) {
      if (c.rank < first + per_node[n]) break;
      first += per_node[n];
      c.node_rank = static_cast<int>(n + 1);
    }
  }
  const size_t node = per_node.size() == 1 ? 0 : static_cast<size_t>(c.node_rank);
  if (node >= per_node.size())
    fail(per_node_var, env.str(per_node_var), "an entry for node " + std::to_string(c.node_rank));
  c.local_world_size = per_node[node];
  check_ranks(c, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", per_node_var);

  if (env.has("MASTER_ADDR") && !env.str("MASTER_ADDR").empty()) {
    c.master_addr = env.str("MASTER_ADDR");
  } else {
    const char* var = env.has("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST";
    if (env.has(var)) {
      c.master_addr = expand_nodelist(env.str(var), var).front();
    } else if (c.world_size > 1) {
      fail("SLURM_JOB_NODELIST", "<unset>",
           "the job's node list (or MASTER_ADDR), since SLURM_NTASKS > 1");
    }
  }
  if (env.has("MASTER_PORT")) {
    c.master_port = env.port("MASTER_PORT");
  } else if (env.has("SLURM_JOB_ID")) {
    const int64_t job = parse_int("SLURM_JOB_ID", env.str("SLURM_JOB_ID"));
    c.master_port = kSlurmPortBase + static_cast<int>(job % kSlurmPortSpan);
  }
  return c;
}

// Splits at commas outside brackets.
std::vector<std::string> split_top(const std::string& s, const std::string& variable) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char ch : s) {
    if (ch == '[') ++depth;
    if (ch == ']' && --depth < 0) fail(variable, s, "balanced brackets");
    if (ch == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (depth != 0) fail(variable, s, "balanced brackets");
  out.push_back(cur);
  return out;
}

void expand_name(const std::string& name, const std::string& whole, const std::string& variable,
                 std::vector<std::string>& out) {
  const size_t open = name.find('[');
  if (open == std::string::npos) {
    if (name.empty()) fail(variable, whole, "comma-separated host names");
    out.push_back(name);
    return;
  }
  const size_t close = name.find(']', open);
  const std::string prefix = name.substr(0, open);
  const std::string rest = name.substr(close + 1);
  const std::string body = name.substr(open + 1, close - open - 1);
  if (body.empty()) fail(variable, whole, "a non-empty [range] list");
  std::stringstream items(body);
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t dash = item.find('-');
    const std::string lo_s = item.substr(0, dash);
    const std::string hi_s = dash == std::string::npos ? lo_s : item.substr(dash + 1);
    if (lo_s.empty() || hi_s.empty()) fail(variable, whole, "ranges like [01-03,07]");
    for (const std::string* s : {&lo_s, &hi_s})
      for (char ch : *s)
        if (ch < '0' || ch > '9') fail(variable, whole, "numeric ranges like [01-03,07]");
    const int64_t lo = parse_int(variable, lo_s), hi = parse_int(variable, hi_s);
    if (hi < lo || hi - lo > 100000) fail(variable, whole, "ascending ranges like [01-03]");
    const size_t width = lo_s.size();  // Slurm pads to the width of the lower bound
    for (int64_t v = lo; v <= hi; ++v) {
      std::string digits = std::to_string(v);
      if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
      expand_name(prefix + digits + rest, whole, variable, out);
    }
  }
  if (body.back() == ',') fail(variable, whole, "ranges like [01-03,07]");
}

}  // namespace

std::vector<std::string> expand_nodelist(const std::string& nodelist, const std::string& variable) {
  std::vector<std::string> out;
  if (nodelist.empty()) fail(variable, nodelist, "a Slurm node list such as gpu[01-03],cpu5");
  for (const std::string& part : split_top(nodelist, variable))
    expand_name(part, nodelist, variable, out);
  return out;
}

std::vector<int> expand_tasks_per_node(const std::string& value, const std::string& variable) {
  std::vector<int> out;
  std::stringstream parts(value);
  std::string part;
  while (std::getline(parts, part, ',')) {
    int64_t repeat = 1;
    std::string count = part;
    const size_t paren = part.find("(x");
    if (paren != std::string::npos) {
      if (part.back() != ')') fail(variable, value, "entries like 4 or 4(x2)");
      count = part.substr(0, paren);
      repeat = parse_int(variable, part.substr(paren + 2, part.size() - paren - 3));
    }
    const int64_t n = parse_int(variable, count);
    if (n < 1 || repeat < 1 || repeat > 100000) fail(variable, value, "entries like 4 or 4(x2)");
    out.insert(out.end(), static_cast<size_t>(repeat), static_cast<int>(n));
  }
  if (out.empty() || value.back() == ',') fail(variable, value, "entries like 4 or 4(x2)");
  return out;
}

Context from_env(const Getenv& getenv) {
  const Env env{getenv};
  if (env.has("RANK") || env.has("WORLD_SIZE")) return from_torchrun(env);
  if (env.has("SLURM_PROCID")) return from_slurm(env);
  return Context{};
}

}  // namespace dmtrain::dist
