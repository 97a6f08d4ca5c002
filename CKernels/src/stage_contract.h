/*
 * stage_contract.h — the CONVEYOR_STAGE line of conveyor.h section 10: parsing it into a
 * cv_stage_env, and checking it against what the program accepts (a
 * conveyor_stage_contract). Both write a one-line English message on failure; stage.c
 * reports it. Not API.
 *
 * The parse is strict, because a pipeline and a program that disagree about the line
 * should stop before the first item, not misread a slot: tokens are separated by spaces;
 * the first is the protocol; every other is key=value with a known key given once; `name`
 * is last and takes the rest of the line verbatim; nothing else is accepted (no control
 * characters, no signs, no empty values, no unknown keys).
 */
#ifndef CONVEYOR_STAGE_CONTRACT_H
#define CONVEYOR_STAGE_CONTRACT_H

#include "internal.h"

#include <stdbool.h>
#include <stdint.h>

/* One side of the items as the pipeline declares it: `present` false for in=none; the
 * frame's dtype, rank (1...4), shape and byte_length (tag 0). */
typedef struct cv_stage_decl {
    bool present;
    conveyor_frame_info frame;
} cv_stage_decl;

/* The contract line, parsed. fds are -1 where the line has none (in_pool for a source,
 * out_pool in place, report until it has been parsed). */
typedef struct cv_stage_env {
    cv_stage_decl in, out;
    int in_pool, out_pool;
    bool in_place;            /* out_pool=in */
    int jobs, done, report;
    int64_t parent;           /* a pid, >= 1 */
    uint32_t replica;
    const char *name;         /* points into the parsed line: the rest of it after "name=" */
} cv_stage_env;

/* Parses `line` (which must outlive env->name). CONVEYOR_OK, or CONVEYOR_E_VERSION (another
 * conveyor-stage/N), or CONVEYOR_E_INVALID_ARGUMENT for anything malformed, with `message`
 * naming the token. env->report is set first, from the first well-formed report=N token
 * before name= (or -1), so a failure anywhere in the line is reported where the pipeline
 * reads. */
int cv_stage_parse(const char *line, cv_stage_env *env, char *message, size_t size);

/* Checks the parsed line against what the program accepts (NULL: anything).
 * CONVEYOR_E_INVALID_ARGUMENT with a message naming both sides ("stage 'g' refuses its
 * input: the pipeline declares f64 500x2000, the program accepts f32 (any shape)"), also
 * for a contract struct the program filled wrongly (reserved fields, rank > 4). */
int cv_stage_check(const cv_stage_env *env, const conveyor_stage_contract *contract,
                   char *message, size_t size);

/* "bytes", "f32", "f64" (or "an unknown dtype"): what the line and the messages call a type.
 * Static storage. */
const char *cv_dtype_name(uint32_t dtype);

/* A declared side as the messages show it: "f64 500x2000", or "none". */
void cv_stage_decl_text(const cv_stage_decl *decl, char *out, size_t size);

#endif /* CONVEYOR_STAGE_CONTRACT_H */
