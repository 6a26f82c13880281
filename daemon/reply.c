/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "reply.h"

const char *reply_elf_type_name(ElfType t) {
        switch (t) {
        case ELF_TYPE_EXEC:
                return "exec";
        case ELF_TYPE_DYN:
                return "dyn";
        case ELF_TYPE_OTHER:
                return "other";
        default:
                return NULL;
        }
}

ProtoModule reply_module(const NormModule *nm, bool htlhash) {
        const ElfInfo *e = nm->elf_status == NORM_VADDR_OK ? nm->elf : NULL;
        ProtoModule m = {
                .path = nm->path,
                .map_files = nm->map_files,
                .host_path = nm->host_path,
                .build_id = nm->build_id,
                .build_id_len = nm->build_id_len,
                .build_id_skipped = nm->build_id_skipped,
                .deleted = nm->deleted,
                .vdso = nm->vdso,
                .dev_major = nm->dev_major,
                .dev_minor = nm->dev_minor,
                .inode = nm->inode,
        };
        const char **package[_ELF_PACKAGE_FIELD_MAX] = {
                [ELF_PACKAGE_TYPE] = &m.package.type,
                [ELF_PACKAGE_NAME] = &m.package.name,
                [ELF_PACKAGE_VERSION] = &m.package.version,
                [ELF_PACKAGE_ARCHITECTURE] = &m.package.architecture,
                [ELF_PACKAGE_OS] = &m.package.os,
                [ELF_PACKAGE_OS_VERSION] = &m.package.os_version,
                [ELF_PACKAGE_DEBUG_INFO_URL] = &m.package.debug_info_url,
        };

        if (!e)
                return m;
        m.elf_type = reply_elf_type_name(e->type);
        m.go_build_id = e->go_build_id;
        if (htlhash && e->has_htlhash) {
                m.has_htlhash = true;
                memcpy(m.htlhash, e->htlhash, sizeof(m.htlhash));
        }
        for (size_t f = 0; f < _ELF_PACKAGE_FIELD_MAX; f++)
                if (e->package[f]) {
                        *package[f] = e->package[f];
                        m.has_package = true;
                }
        return m;
}

/* Why a result has no ELF address, as proto/ says it; NULL when it has one, or was not asked. */
static const char *no_elf_address_name(NormVaddr v) {
        switch (v) {
        case NORM_VADDR_NOT_ELF:
                return "not_elf";
        case NORM_VADDR_NOT_LOADED:
                return "outside_load_segments";
        case NORM_VADDR_UNREADABLE:
        case NORM_VADDR_SKIPPED:
                return "unreadable";
        default:
                return NULL;
        }
}

ProtoResult reply_result(const NormResult *nr, const uint32_t *remap) {
        if (nr->kind != NORM_MODULE)
                return (ProtoResult) { .unknown = norm_kind_to_string(nr->kind) };
        return (ProtoResult) {
                .module = remap ? remap[nr->module] : nr->module,
                .offset = nr->offset,
                .has_elf_address = nr->vaddr_status == NORM_VADDR_OK,
                .elf_address = nr->vaddr,
                .no_elf_address = no_elf_address_name(nr->vaddr_status),
        };
}
