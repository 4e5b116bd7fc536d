// from_env with a fake getenv: torchrun, Slurm, single process and every error path.
#include "dmtrain/dist/context.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "dmtrain/util/error.hpp"

namespace dist = dmtrain::dist;

namespace {

dist::Context ctx_of(const std::map<std::string, std::string>& vars) {
  return dist::from_env([&vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

// Expects dmtrain::Error whose message contains every fragment.
void expect_error(const std::map<std::string, std::string>& vars,
                  const std::vector<std::string>& fragments) {
  try {
    ctx_of(vars);
    ADD_FAILURE() << "no error";
  } catch (const dmtrain::Error& e) {
    for (const auto& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what() << " lacks " << f;
  }
}

const std::map<std::string, std::string> kTorchrun = {{"RANK", "5"},
                                                      {"LOCAL_RANK", "1"},
                                                      {"WORLD_SIZE", "8"},
                                                      {"LOCAL_WORLD_SIZE", "4"},
                                                      {"MASTER_ADDR", "node0"},
                                                      {"MASTER_PORT", "29400"},
                                                      {"GROUP_RANK", "1"}};

}  // namespace

TEST(DistContext, SingleProcessWithoutVariables) {
  const auto c = ctx_of({{"PATH", "/bin"}});
  EXPECT_EQ(c.rank, 0);
  EXPECT_EQ(c.world_size, 1);
  EXPECT_EQ(c.local_rank, 0);
  EXPECT_EQ(c.local_world_size, 1);
  EXPECT_FALSE(c.distributed());
  EXPECT_TRUE(c.is_main());
  EXPECT_EQ(c.source, "single");
}

TEST(DistContext, Torchrun) {
  const auto c = ctx_of(kTorchrun);
  EXPECT_EQ(c.source, "torchrun");
  EXPECT_EQ(c.rank, 5);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.world_size, 8);
  EXPECT_EQ(c.local_world_size, 4);
  EXPECT_EQ(c.node_rank, 1);
  EXPECT_EQ(c.master_addr, "node0");
  EXPECT_EQ(c.master_port, 29400);
  EXPECT_TRUE(c.distributed());
  EXPECT_FALSE(c.is_main());
}

TEST(DistContext, TorchrunDefaultsAndPrecedenceOverSlurm) {
  // No LOCAL_* -> one node; torchrun variables win over Slurm's (torchrun inside srun).
  const auto c = ctx_of({{"RANK", "0"},
                         {"WORLD_SIZE", "2"},
                         {"MASTER_ADDR", "h"},
                         {"MASTER_PORT", "1234"},
                         {"SLURM_PROCID", "7"},
                         {"SLURM_NTASKS", "8"}});
  EXPECT_EQ(c.source, "torchrun");
  EXPECT_EQ(c.rank, 0);
  EXPECT_EQ(c.local_rank, 0);
  EXPECT_EQ(c.local_world_size, 2);
  EXPECT_EQ(c.node_rank, 0);
  EXPECT_TRUE(c.is_main());
  // WORLD_SIZE=1 needs no rendezvous address.
  const auto one = ctx_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_FALSE(one.distributed());
}

TEST(DistContext, Slurm) {
  const auto c = ctx_of({{"SLURM_PROCID", "6"},
                         {"SLURM_NTASKS", "8"},
                         {"SLURM_LOCALID", "2"},
                         {"SLURM_TASKS_PER_NODE", "4(x2)"},
                         {"SLURM_JOB_NODELIST", "gpu[01-03,07],cpu5"},
                         {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(c.source, "slurm");
  EXPECT_EQ(c.rank, 6);
  EXPECT_EQ(c.world_size, 8);
  EXPECT_EQ(c.local_rank, 2);
  EXPECT_EQ(c.local_world_size, 4);
  EXPECT_EQ(c.node_rank, 1);  // ranks 4..7 are on the second node
  EXPECT_EQ(c.master_addr, "gpu01");
  EXPECT_EQ(c.master_port, 20000 + 123456 % 20000);  // 23456
  EXPECT_EQ(c.master_port, 23456);
}

TEST(DistContext, SlurmExplicitValuesWin) {
  const auto c = ctx_of({{"SLURM_PROCID", "0"},
                         {"SLURM_NTASKS", "6"},
                         {"SLURM_LOCALID", "0"},
                         {"SLURM_NTASKS_PER_NODE", "3"},
                         {"SLURM_NODEID", "0"},
                         {"SLURM_NODELIST", "a1,b2"},
                         {"MASTER_ADDR", "10.0.0.1"},
                         {"MASTER_PORT", "30000"},
                         {"SLURM_JOB_ID", "99"}});
  EXPECT_EQ(c.local_world_size, 3);
  EXPECT_EQ(c.master_addr, "10.0.0.1");
  EXPECT_EQ(c.master_port, 30000);
  // SLURM_NODELIST is the fallback for SLURM_JOB_NODELIST.
  const auto d = ctx_of({{"SLURM_PROCID", "1"},
                         {"SLURM_NTASKS", "2"},
                         {"SLURM_LOCALID", "1"},
                         {"SLURM_NODELIST", "b2,a1"}});
  EXPECT_EQ(d.master_addr, "b2");
  EXPECT_EQ(d.master_port, dist::kDefaultMasterPort);
  // Uneven nodes: "3,1" puts rank 3 alone on node 1.
  const auto e = ctx_of({{"SLURM_PROCID", "3"},
                         {"SLURM_NTASKS", "4"},
                         {"SLURM_LOCALID", "0"},
                         {"SLURM_TASKS_PER_NODE", "3,1"},
                         {"SLURM_NODELIST", "n[1-2]"}});
  EXPECT_EQ(e.node_rank, 1);
  EXPECT_EQ(e.local_world_size, 1);
}

TEST(DistContext, SlurmSingleTaskRunsAlone) {
  const auto c = ctx_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_JOB_ID", "5"}});
  EXPECT_FALSE(c.distributed());
  EXPECT_EQ(c.master_port, 20005);
}

TEST(DistContext, ExpandNodelist) {
  using V = std::vector<std::string>;
  EXPECT_EQ(dist::expand_nodelist("gpu[01-03,07],cpu5"),
            (V{"gpu01", "gpu02", "gpu03", "gpu07", "cpu5"}));
  EXPECT_EQ(dist::expand_nodelist("node7"), (V{"node7"}));
  EXPECT_EQ(dist::expand_nodelist("n[8-11]"), (V{"n8", "n9", "n10", "n11"}));
  EXPECT_EQ(dist::expand_nodelist("n[098-101]"), (V{"n098", "n099", "n100", "n101"}));
  EXPECT_EQ(dist::expand_nodelist("r[1-2]-n[1,3]"), (V{"r1-n1", "r1-n3", "r2-n1", "r2-n3"}));
  EXPECT_EQ(dist::expand_nodelist("a,b[2],c"), (V{"a", "b2", "c"}));
  for (const char* bad :
       {"", "gpu[01-03", "gpu01]", "gpu[]", "gpu[3-1]", "gpu[a-b]", "a,,b", "gpu[1-]", "gpu[1,]"})
    EXPECT_THROW(dist::expand_nodelist(bad), dmtrain::Error) << bad;
}

TEST(DistContext, ExpandTasksPerNode) {
  using V = std::vector<int>;
  EXPECT_EQ(dist::expand_tasks_per_node("4(x2)"), (V{4, 4}));
  EXPECT_EQ(dist::expand_tasks_per_node("4(x2),2"), (V{4, 4, 2}));
  EXPECT_EQ(dist::expand_tasks_per_node("8"), (V{8}));
  for (const char* bad : {"", "4(x)", "4(x2", "x", "0", "4,", "-1"})
    EXPECT_THROW(dist::expand_tasks_per_node(bad), dmtrain::Error) << bad;
}

TEST(DistContext, TorchrunErrors) {
  auto with = [](std::map<std::string, std::string> m, const std::string& k, const std::string& v) {
    m[k] = v;
    return m;
  };
  auto without = [](std::map<std::string, std::string> m, const std::string& k) {
    m.erase(k);
    return m;
  };
  expect_error(with(kTorchrun, "RANK", "8"), {"RANK", "'8'", "WORLD_SIZE=8"});
  expect_error(with(kTorchrun, "RANK", "two"), {"RANK", "'two'", "integer"});
  expect_error(with(kTorchrun, "RANK", "-1"), {"RANK", "'-1'"});
  expect_error(with(kTorchrun, "WORLD_SIZE", "0"), {"WORLD_SIZE", "'0'"});
  expect_error(with(kTorchrun, "WORLD_SIZE", "8x"), {"WORLD_SIZE", "'8x'"});
  expect_error(with(kTorchrun, "LOCAL_RANK", "4"), {"LOCAL_RANK", "'4'", "LOCAL_WORLD_SIZE=4"});
  expect_error(with(kTorchrun, "LOCAL_WORLD_SIZE", "9"), {"LOCAL_WORLD_SIZE", "'9'"});
  expect_error(with(kTorchrun, "MASTER_PORT", "70000"), {"MASTER_PORT", "'70000'", "port"});
  expect_error(with(kTorchrun, "MASTER_PORT", ""), {"MASTER_PORT", "''"});
  expect_error(with(kTorchrun, "GROUP_RANK", "x"), {"GROUP_RANK", "'x'"});
  expect_error(with(kTorchrun, "MASTER_ADDR", ""), {"MASTER_ADDR"});
  expect_error(without(kTorchrun, "MASTER_ADDR"), {"MASTER_ADDR", "WORLD_SIZE=8"});
  expect_error(without(kTorchrun, "MASTER_PORT"), {"MASTER_PORT", "WORLD_SIZE=8"});
  expect_error(without(kTorchrun, "RANK"), {"RANK"});
  expect_error(without(kTorchrun, "WORLD_SIZE"), {"WORLD_SIZE"});
}

TEST(DistContext, SlurmErrors) {
  const std::map<std::string, std::string> ok = {{"SLURM_PROCID", "1"},
                                                 {"SLURM_NTASKS", "4"},
                                                 {"SLURM_LOCALID", "1"},
                                                 {"SLURM_TASKS_PER_NODE", "2(x2)"},
                                                 {"SLURM_JOB_NODELIST", "n[1-2]"},
                                                 {"SLURM_JOB_ID", "77"}};
  EXPECT_NO_THROW(ctx_of(ok));
  auto with = [&ok](const std::string& k, const std::string& v) {
    auto m = ok;
    m[k] = v;
    return m;
  };
  auto without = [&ok](const std::string& k) {
    auto m = ok;
    m.erase(k);
    return m;
  };
  expect_error(with("SLURM_PROCID", "4"), {"SLURM_PROCID", "'4'", "SLURM_NTASKS=4"});
  expect_error(with("SLURM_PROCID", "a"), {"SLURM_PROCID", "'a'"});
  expect_error(with("SLURM_NTASKS", "0"), {"SLURM_NTASKS", "'0'"});
  expect_error(with("SLURM_LOCALID", "2"), {"SLURM_LOCALID", "'2'"});
  expect_error(with("SLURM_TASKS_PER_NODE", "2(x"), {"SLURM_TASKS_PER_NODE", "'2(x'"});
  expect_error(with("SLURM_JOB_NODELIST", "n[1-2"), {"SLURM_JOB_NODELIST", "'n[1-2'"});
  expect_error(with("SLURM_JOB_ID", "abc"), {"SLURM_JOB_ID", "'abc'"});
  expect_error(with("MASTER_PORT", "0"), {"MASTER_PORT", "'0'"});
  expect_error(with("SLURM_NODEID", "5"), {"SLURM_TASKS_PER_NODE", "node 5"});
  expect_error(without("SLURM_NTASKS"), {"SLURM_NTASKS"});
  expect_error(without("SLURM_JOB_NODELIST"), {"SLURM_JOB_NODELIST"});
}
