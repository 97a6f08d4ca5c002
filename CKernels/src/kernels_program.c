/* kernels_program.c — fused elementwise programs and the single-op kernels, for f64 and
 * f32, instantiated from program_template.h. */
#include "internal.h"

#include <string.h>

#define CV_T double
#define CV_I int64_t
#define CV_SFX f64
#define CV_UNIFORM_LANES /* the register-fused generate-transform-sum, f64 only */
#include "program_template.h"
#undef CV_UNIFORM_LANES
#undef CV_T
#undef CV_I
#undef CV_SFX

#define CV_T float
#define CV_I int32_t
#define CV_SFX f32
#include "program_template.h"
#undef CV_T
#undef CV_I
#undef CV_SFX
