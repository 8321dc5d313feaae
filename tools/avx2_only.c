/* Run a program as on an x86-64 CPU with AVX2 and FMA but no AVX-512, VNNI or AMX, at native speed.

   Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID, the `cpuid_fault` flag of /proc/cpuinfo) makes every CPUID
   instruction after this library loads trap; the handler runs the real CPUID and clears the feature bits of
   AVX-512, VNNI (AVX-512 and AVX) and AMX before handing the answer back. Libraries that choose their kernels
   from CPUID after start-up (onnxruntime's MLAS, numpy, torch, oneDNN, MKL) then choose their AVX2 ones, as on
   a Haswell or an AMD Zen 2. Code chosen by the dynamic loader before this library (glibc's string functions)
   is not affected, nor are statically linked programs. A SIGSEGV handler installed later (Python's faulthandler:
   tools/avx2_only.py unsets PYTHONFAULTHANDLER; pytest needs -p no:faulthandler) takes the trap and ends the
   process, and so does CPUID in a thread that blocks SIGSEGV. tools/avx2_only.py builds and preloads it;
   docs/BENCHMARKS.md says what it measured.

   gcc -O2 -shared -fPIC -o avx2_only.so avx2_only.c */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

/* CPUID leaf 7, sub-leaf 0. EBX: AVX512 F DQ IFMA PF ER CD BW VL; ECX: VBMI VBMI2 VNNI BITALG VPOPCNTDQ;
   EDX: 4VNNIW 4FMAPS VP2INTERSECT AMX-BF16 FP16 AMX-TILE AMX-INT8. Sub-leaf 1, EAX: AVX-VNNI AVX512-BF16
   AMX-FP16 AVX-IFMA; EDX: AVX-VNNI-INT8 AVX-NE-CONVERT AMX-COMPLEX AVX-VNNI-INT16 AVX10. Leaf 0x24 (AVX10's
   version and vector lengths) answers zeros. */
static const unsigned LEAF7_EBX = BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31);
static const unsigned LEAF7_ECX = BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14);
static const unsigned LEAF7_EDX = BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25);
static const unsigned LEAF7_1_EAX = BIT(4) | BIT(5) | BIT(21) | BIT(23);
static const unsigned LEAF7_1_EDX = BIT(4) | BIT(5) | BIT(8) | BIT(10) | BIT(19);

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void on_segv(int sig, siginfo_t *info, void *context) {
    greg_t *r = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (info->si_code != SI_KERNEL || ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault, or a sent signal */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
    set_cpuid(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        b &= ~LEAF7_EBX;
        c &= ~LEAF7_ECX;
        d &= ~LEAF7_EDX;
    } else if (leaf == 7 && sub == 1) {
        a &= ~LEAF7_1_EAX;
        d &= ~LEAF7_1_EDX;
    } else if (leaf == 0x24) {
        a = b = c = d = 0;
    }
    r[REG_RAX] = a;
    r[REG_RBX] = b;
    r[REG_RCX] = c;
    r[REG_RDX] = d;
    r[REG_RIP] += 2;
}

/* Chromium and its driver (the browser test's) install their own crash handlers, which would take the trap;
   they run none of this project's kernels, so they are left unmasked. */
static int left_unmasked(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    const char *base = strrchr(exe, '/');
    return strncmp(base ? base + 1 : exe, "chrom", 5) == 0;
}

__attribute__((constructor)) static void mask_cpuid(void) {
    if (left_unmasked()) return;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, NULL);
    if (set_cpuid(0) != 0) {
        fprintf(stderr, "avx2_only: this CPU or kernel has no CPUID faulting (no cpuid_fault in /proc/cpuinfo)\n");
        exit(2);
    }
}
