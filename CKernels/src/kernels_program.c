/* kernels_program.c — fused elementwise programs and the single-op kernels, for f64 and
 * f32, instantiated from program_template.h. */
#include "internal.h"

/* Block size of the fused engine: 4 KiB of out (plus as much of x) stays well inside a
 * 32 KiB L1 between steps, and is long enough that the per-block dispatch is noise. */
#define CV_BLOCK_BYTES 4096

#define CV_T double
#define CV_SFX f64
#include "program_template.h"
#undef CV_T
#undef CV_SFX

#define CV_T float
#define CV_SFX f32
#include "program_template.h"
#undef CV_T
#undef CV_SFX
