/*
 * insn_count: a QEMU TCG plugin counting executed aarch64 instructions by class, between markers.
 *
 * Built by `edgekit arm setup` against Debian's qemu-plugin.h; loaded with
 *   qemu-aarch64 -plugin libinsn_count.so,out=/path/counts.json ...
 *
 * Counting is off until the guest makes a getppid() syscall (173 on aarch64), on after it,
 * off after the next, and so on: the guest brackets exactly the calls it wants measured.
 * Each translation block is classified once at translation (its instruction words decoded by
 * encoding group) and adds its class counts on every execution while counting is on.
 *
 * Classes (A64 encodings, Arm ARM C4.1):
 *   total         every instruction
 *   simd          data processing, scalar FP and Advanced SIMD: op0 = x111 (bits 27..25 = 111)
 *   loads_stores  loads and stores, general and SIMD&FP: op0 = x1x0 (bit 27 = 1, bit 25 = 0)
 *   dot           SDOT/UDOT, vector and by element (ARMv8.2 dot product)
 *   fma           FMLA, vector and by element, single/double and half precision
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { TOTAL, SIMD, LDST, DOT, FMA, NCLASS };
static const char *names[NCLASS] = {"total", "simd", "loads_stores", "dot", "fma"};

static uint64_t counts[NCLASS];
static uint64_t markers;
static int active;
static char out_path[4096];

struct tb_counts { uint64_t n[NCLASS]; };

static int is_dot(uint32_t w)
{
    /* three registers, same type (extra): 0 Q U 01110 10 0 Rm 1 0010 1 Rn Rd */
    if ((w & 0x9FE0FC00u) == 0x0E809400u) return 1;
    /* by element: 0 Q U 01111 10 L M Rm 1110 H 0 Rn Rd */
    if ((w & 0x9FC0F400u) == 0x0F80E000u) return 1;
    return 0;
}

static int is_fmla(uint32_t w)
{
    if ((w & 0xBFA0FC00u) == 0x0E20CC00u) return 1;  /* vector, single/double */
    if ((w & 0xBFE0FC00u) == 0x0E400C00u) return 1;  /* vector, half precision */
    if ((w & 0xBF80F400u) == 0x0F801000u) return 1;  /* by element, single/double */
    if ((w & 0xBFC0F400u) == 0x0F001000u) return 1;  /* by element, half precision */
    return 0;
}

static void tb_exec(unsigned int vcpu_index, void *udata)
{
    const struct tb_counts *c = udata;
    if (!__atomic_load_n(&active, __ATOMIC_RELAXED))
        return;
    for (int k = 0; k < NCLASS; k++)
        if (c->n[k])
            __atomic_fetch_add(&counts[k], c->n[k], __ATOMIC_RELAXED);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    struct tb_counts *c = calloc(1, sizeof(*c));  /* lives as long as the translation: never freed */
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t w = 0;
        if (qemu_plugin_insn_size(insn) == 4)
            memcpy(&w, qemu_plugin_insn_data(insn), 4);
        c->n[TOTAL]++;
        if ((w & 0x0E000000u) == 0x0E000000u) c->n[SIMD]++;
        if ((w & 0x0A000000u) == 0x08000000u) c->n[LDST]++;
        if (is_dot(w)) c->n[DOT]++;
        if (is_fmla(w)) c->n[FMA]++;
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, c);
}

static void syscall_cb(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num == 173) {  /* getppid: the guest's start/stop marker */
        __atomic_fetch_add(&markers, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&active, !__atomic_load_n(&active, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (!f)
        return;
    fprintf(f, "{\"markers\": %" PRIu64, markers);
    for (int k = 0; k < NCLASS; k++)
        fprintf(f, ", \"%s\": %" PRIu64, names[k], counts[k]);
    fprintf(f, "}\n");
    if (f != stderr)
        fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0)
            snprintf(out_path, sizeof(out_path), "%s", argv[i] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, syscall_cb);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
