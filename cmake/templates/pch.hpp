// Precompiled header: the LibTorch and standard headers that nearly every translation unit uses.
// Sources still include what they use; this only makes the 2-core CI build short.
#pragma once
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>
#include <string>
#include <vector>
#include <map>
#include <memory>
