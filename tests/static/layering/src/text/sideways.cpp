// A layering violation on purpose: text and cuda are peers.
#include "cuda/cuda_runtime.h"
