/* table.cu: the CUDA column of the kernel table, generated from kernels.def.  The X-macro
 * lists the members in the struct's own order, as C++ designated initializers require. */
#include "cuda_internal.h"

extern "C" const sn__kernels sn__kernels_cuda = {
#define SN_KERNEL(name, params) .name = sn__##name##_cuda,
#include "../kernels.def"
#undef SN_KERNEL
};
