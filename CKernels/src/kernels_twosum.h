/*
 * kernels_twosum.h — the compensated-sum step and the lane count that the sum kernels
 * (kernels_sum.c) and the register-fused generate-transform-sum (program_template.h,
 * CV_UNIFORM_LANES) share. One definition, so that the two paths give the same bits: a
 * value lands in the same lane and is added with the same operations in either. Private.
 */
#ifndef CONVEYOR_KERNELS_TWOSUM_H
#define CONVEYOR_KERNELS_TWOSUM_H

/* Lanes of the compensated sum: lane l takes elements l, l + CV_SUM_LANES, l + 2 *
 * CV_SUM_LANES... of a range. 32: four AVX-512 (or eight AVX2) registers of sums, enough
 * independent chains to hide the adder's latency. Part of every sum's bits: changing it
 * changes the documented results of conveyor_*_sum and conveyor_*_uniform_program_sum. */
#define CV_SUM_LANES 32

/* Knuth's branch-free TwoSum: adds V to the running sum S, and the exact rounding error
 * of S + V to the running error C:
 *     t = s + v;  z = t - s;  c += (s - (t - z)) + (v - z);  s = t;
 * S, C and V are doubles, or vectors of doubles (GCC/Clang vector extensions) for SIMD
 * lanes: the same operations in the same order either way, so the same bits element for
 * element. Only additions and subtractions: nothing for -ffp-contract to fuse. The
 * arguments are evaluated more than once: pass variables or lvalues, not expressions with
 * side effects. */
#define CV_TWO_SUM(S, C, V)                                     \
    do {                                                        \
        __typeof__(S) cv_two_sum_t_ = (S) + (V);                \
        __typeof__(S) cv_two_sum_z_ = cv_two_sum_t_ - (S);      \
        (C) += ((S) - (cv_two_sum_t_ - cv_two_sum_z_)) + ((V) - cv_two_sum_z_); \
        (S) = cv_two_sum_t_;                                    \
    } while (0)

#endif /* CONVEYOR_KERNELS_TWOSUM_H */
