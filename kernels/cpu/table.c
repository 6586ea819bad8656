/* table.c: the CPU column of the kernel table, generated from kernels.def.  SN_KERNEL_GPU
 * entries are NULL: lib/bf16.c emulates them on the CPU. */
#include "../kernels.h"

const sn__kernels sn__kernels_cpu = {
#define SN_KERNEL(name, params) .name = sn__##name##_cpu,
#define SN_KERNEL_GPU(name, params) .name = NULL,
#include "../kernels.def"
#undef SN_KERNEL_GPU
#undef SN_KERNEL
};
