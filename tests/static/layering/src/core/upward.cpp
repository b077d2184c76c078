// A layering violation on purpose (layers.check_catches_upward): the core
// includes the pipeline layer and a LibTorch header.
#include <ATen/Tensor.h>

#include "pipeline/family.h"
