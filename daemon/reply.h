/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the core answered, as proto/ sends it: the service layer's one
 * translation from Normalization to ProtoModule and ProtoResult, shared
 * by methods.c and the benchmark that times it. The results point into
 * what they were made from.
 */

#include <stdbool.h>
#include <stdint.h>

#include "proc.h"
#include "vmaq-proto.h"

/* What proto/ calls an ELF type; NULL for a file that is not ELF, or malformed. */
const char *reply_elf_type_name(ElfType t);

/* A module; with @htlhash, its htlhash (the cache may have one the call did not ask for). */
ProtoModule reply_module(const NormModule *nm, bool htlhash);

/* A result, its module numbered by @remap (NULL: as the core numbers it). */
ProtoResult reply_result(const NormResult *nr, const uint32_t *remap);
