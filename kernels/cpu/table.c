/* table.c: the CPU column of the kernel table, generated from kernels.def. */
#include "../kernels.h"

const sn__kernels sn__kernels_cpu = {
#define SN_KERNEL(name, params) .name = sn__##name##_cpu,
#include "../kernels.def"
#undef SN_KERNEL
};
