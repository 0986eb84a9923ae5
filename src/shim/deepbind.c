/*
 * deepbind.c - libraries loaded with RTLD_DEEPBIND still reach the shim's interposers.
 *
 * The problem. dlopen(F, RTLD_DEEPBIND) puts F and its dependencies first in their own
 * symbol lookups, before the global scope where LD_PRELOAD objects live. PHP loads every
 * extension so (PHP >= 8.2, against symbol clashes under mod_php). curl.so's libcurl then
 * binds connect to libc directly, and no connect of curl_exec reaches the shim.
 *
 * The choices seen to work, and why this file does neither:
 *   - Drop RTLD_DEEPBIND from the load. Every symbol then binds globally first: the clash
 *     DEEPBIND is there to avoid comes back (mod_php's extensions against Apache's libs).
 *   - Preload the library (libcurl) after the shim. It then binds through the global scope,
 *     but only that library is fixed; the next DEEPBIND program needs its own list.
 *
 * The fix. After a DEEPBIND load, the GOT slots of every loaded object that bind one of
 * the shim's exported interposers (connect, sendto, dlopen, and any added later: the list
 * is read from the shim's own dynamic symbol table) to the very function the interposer
 * forwards to (dlsym(RTLD_NEXT), libc's connect) are rewritten to the interposer, which
 * is where a load without DEEPBIND would have bound them. Nothing else changes: every
 * other symbol keeps its deep binding, and a slot bound to another definition (the
 * object's own connect, which is what DEEPBIND protects) is left alone. A slot not yet
 * bound (lazy binding) is rewritten if the deep lookup (dlsym on the new handle) would
 * give that same function. Slots in RELRO are made writable for the one store.
 * dlopen is among the rewritten slots, so a deep-bound library's own DEEPBIND loads come
 * back here too.
 *
 * The caller of dlopen matters to glibc: its RUNPATH and $ORIGIN name the files found.
 * On x86-64 the exported dlopen is a few instructions that jump to the real one for every
 * load without RTLD_DEEPBIND, so glibc sees the caller's own return address. A DEEPBIND
 * load (and every load on other targets) is made from here; a name without '/' is then
 * looked up first along the caller's search path (dlinfo RTLD_DI_SERINFO), and a leading
 * $ORIGIN is the caller's, so the same file is found.
 *
 * Cost: one pass over the relocations of the objects that are new since the last pass
 * (PHP: ~30 extensions, once each at startup). Never on a connect.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../atomics.h"
#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

typedef void *(*dlopen_fn)(const char *, int);

/* The next dlopen (libc's), set by the constructor, else on first use. Release store (G1);
 * the x86-64 entry reads it with a plain load, an acquire on x86-64. */
void *_Atomic shim_next_dlopen;

/* The shim's exported functions and what each forwards to: found per pass, as a library
 * that defines the next one (libssl's SSL_write) may come with the load. */
#define HOOKS_MAX 64 /* more than the shim exports (38 with the request and TLS hooks) */
struct hook {
    const char *name;
    void *ours; /* the interposer */
    void *next; /* dlsym(RTLD_NEXT): what a deep-bound object binds instead */
    void *deep; /* dlsym(new handle): what a lazy slot of the load would bind */
};

/* One pass at a time: patching makes RELRO pages writable for a moment. */
static pthread_mutex_t pass_lock = PTHREAD_MUTEX_INITIALIZER;

/* Objects already patched, by program header address; cleared when one is unloaded. */
static struct {
    const void **phdr;
    size_t n, cap;
    unsigned long long subs; /* dlpi_subs when the list was last valid */
} seen;

/* ------------------------------------------------------------------ ELF walking */

/* A dynamic-section pointer: glibc relocates them in place, except in read-only dynamic
 * sections (the vDSO): then they are still offsets from the load address. */
static uintptr_t dyn_ptr(const struct dl_phdr_info *info, ElfW(Addr) p)
{
    return p < info->dlpi_addr ? info->dlpi_addr + p : p;
}

struct dyn {
    const ElfW(Sym) * symtab;
    const char *strtab;
    uintptr_t jmprel, rela, rel, gnu_hash, hash;
    size_t pltrelsz, relasz, relsz;
    long pltrel; /* DT_RELA or DT_REL */
};

static bool read_dynamic(const struct dl_phdr_info *info, struct dyn *d)
{
    const ElfW(Dyn) *dyn = NULL;
    memset(d, 0, sizeof(*d));
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!dyn)
        return false;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB:
            d->symtab = (const ElfW(Sym) *)dyn_ptr(info, dyn->d_un.d_ptr);
            break;
        case DT_STRTAB:
            d->strtab = (const char *)dyn_ptr(info, dyn->d_un.d_ptr);
            break;
        case DT_JMPREL:
            d->jmprel = dyn_ptr(info, dyn->d_un.d_ptr);
            break;
        case DT_PLTRELSZ:
            d->pltrelsz = dyn->d_un.d_val;
            break;
        case DT_PLTREL:
            d->pltrel = (long)dyn->d_un.d_val;
            break;
        case DT_RELA:
            d->rela = dyn_ptr(info, dyn->d_un.d_ptr);
            break;
        case DT_RELASZ:
            d->relasz = dyn->d_un.d_val;
            break;
        case DT_REL:
            d->rel = dyn_ptr(info, dyn->d_un.d_ptr);
            break;
        case DT_RELSZ:
            d->relsz = dyn->d_un.d_val;
            break;
        case DT_GNU_HASH:
            d->gnu_hash = dyn_ptr(info, dyn->d_un.d_ptr);
            break;
        case DT_HASH:
            d->hash = dyn_ptr(info, dyn->d_un.d_ptr);
            break;
        default:
            break;
        }
    }
    return d->symtab && d->strtab;
}

/* Symbols in the dynamic symbol table: DT_HASH says; else the highest in DT_GNU_HASH. */
static size_t symbol_count(const struct dyn *d)
{
    if (d->hash)
        return ((const uint32_t *)d->hash)[1];
    if (!d->gnu_hash)
        return 0;
    const uint32_t *h = (const uint32_t *)d->gnu_hash;
    uint32_t nbuckets = h[0], symoffset = h[1], bloom = h[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(h + 4) + bloom);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t last = 0;
    for (uint32_t i = 0; i < nbuckets; i++)
        last = buckets[i] > last ? buckets[i] : last;
    if (last < symoffset)
        return symoffset;
    while (!(chain[last - symoffset] & 1))
        last++;
    return last + 1;
}

/* Is address p inside one of the object's loaded segments? */
static bool in_object(const struct dl_phdr_info *info, uintptr_t p)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && p >= start && p - start < ph->p_memsz)
            return true;
    }
    return false;
}

static bool in_relro(const struct dl_phdr_info *info, uintptr_t p)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_GNU_RELRO && p >= start && p - start < ph->p_memsz)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------ the pass */

struct pass {
    struct hook hooks[HOOKS_MAX];
    size_t nhooks;
    uintptr_t shim_base;
    unsigned redirected; /* slots rewritten in this pass */
};

/* The shim's own exported functions, from its dynamic symbol table (preload.map). */
static int collect_hooks(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct pass *p = arg;
    struct dyn d;
    (void)size;
    if (info->dlpi_addr != p->shim_base || !read_dynamic(info, &d))
        return 0;
    size_t n = symbol_count(&d);
    for (size_t i = 1; i < n && p->nhooks < HOOKS_MAX; i++) {
        const ElfW(Sym) *s = &d.symtab[i];
        int type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);
        if (s->st_shndx == SHN_UNDEF || type != STT_FUNC || bind == STB_LOCAL)
            continue;
        p->hooks[p->nhooks].name = d.strtab + s->st_name;
        p->hooks[p->nhooks++].ours = (void *)(info->dlpi_addr + s->st_value);
    }
    return 1;
}

/* G1: store the interposer into a slot; a thread calling through it meanwhile finds the old
 * function or the new one, both whole. */
static void patch_slot(const struct dl_phdr_info *info, uintptr_t slot, void *fn)
{
    long page = sysconf(_SC_PAGESIZE);
    void *start = (void *)(slot & ~(uintptr_t)(page - 1));
    bool relro = in_relro(info, slot); /* an aligned slot never spans two pages */
    if (relro && mprotect(start, (size_t)page, PROT_READ | PROT_WRITE) != 0)
        return;
    rl__ptr_store_release((void *_Atomic *)slot, fn);
    if (relro)
        mprotect(start, (size_t)page, PROT_READ);
}

/* A relocation type that binds a function's address into a slot; *lazy: a PLT slot, which
 * holds the object's own PLT code until first called. */
static bool binds_function(unsigned long type, bool *lazy)
{
#if defined(__x86_64__)
    *lazy = type == R_X86_64_JUMP_SLOT;
    return type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT;
#elif defined(__aarch64__)
    *lazy = type == R_AARCH64_JUMP_SLOT;
    return type == R_AARCH64_JUMP_SLOT || type == R_AARCH64_GLOB_DAT;
#else
    (void)type; /* other targets: nothing is rewritten */
    *lazy = false;
    return false;
#endif
}

/* Does slot (now holding `now`) bypass hook h? It does if it holds the function h forwards
 * to, or is an unbound PLT slot whose deep lookup gives that function. Never in the object
 * that defines that function (libc's own references to its connect). */
static bool bypasses(const struct dl_phdr_info *info, const struct hook *h, void *now, bool lazy)
{
    if (!h->next || in_object(info, (uintptr_t)h->next))
        return false;
    return now == h->next || (lazy && in_object(info, (uintptr_t)now) && h->deep == h->next);
}

static void patch_relocs(const struct dl_phdr_info *info, const struct dyn *d, uintptr_t table,
                         size_t bytes, bool rela, struct pass *p)
{
    size_t entry = rela ? sizeof(ElfW(Rela)) : sizeof(ElfW(Rel));
    for (size_t off = 0; table && off + entry <= bytes; off += entry) {
        const ElfW(Rel) *r = (const ElfW(Rel) *)(table + off); /* Rela starts like Rel */
        unsigned long sym = ELF64_R_SYM(r->r_info);
        bool lazy;
        if (sym == 0 || !binds_function(ELF64_R_TYPE(r->r_info), &lazy))
            continue;
        const char *name = d->strtab + d->symtab[sym].st_name;
        for (size_t i = 0; i < p->nhooks; i++) {
            if (strcmp(name, p->hooks[i].name) != 0)
                continue;
            uintptr_t slot = info->dlpi_addr + r->r_offset;
            if (bypasses(info, &p->hooks[i], *(void *const *)slot, lazy)) {
                patch_slot(info, slot, p->hooks[i].ours);
                p->redirected++;
            }
            break;
        }
    }
}

static bool seen_before(const void *phdr)
{
    for (size_t i = 0; i < seen.n; i++)
        if (seen.phdr[i] == phdr)
            return true;
    if (seen.n == seen.cap) {
        size_t cap = seen.cap ? 2 * seen.cap : 64;
        const void **bigger = realloc(seen.phdr, cap * sizeof(*bigger));
        if (!bigger)
            return false; /* patched again next time: harmless */
        seen.phdr = bigger;
        seen.cap = cap;
    }
    seen.phdr[seen.n++] = phdr;
    return false;
}

/* Called with the loader's list lock held: reads memory and calls mprotect, nothing that
 * takes the loader's other locks (dlsym, dladdr). */
static int patch_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct pass *p = arg;
    struct dyn d;
    (void)size;
    if (info->dlpi_subs != seen.subs) {
        seen.n = 0; /* an object was unloaded: its address may hold a new one */
        seen.subs = info->dlpi_subs;
    }
    if (info->dlpi_addr == p->shim_base || seen_before(info->dlpi_phdr) || !read_dynamic(info, &d))
        return 0;
    bool plt_rela = d.pltrel != DT_REL;
    patch_relocs(info, &d, d.jmprel, d.pltrelsz, plt_rela, p);
    patch_relocs(info, &d, d.rela, d.relasz, true, p);
    patch_relocs(info, &d, d.rel, d.relsz, false, p);
    return 0;
}

/* Rewrite the slots that bypass the shim after a DEEPBIND load of `handle`. */
static void deepbind_pass(void *handle, const char *file)
{
    struct pass p = {0};
    Dl_info self;
    if (!dladdr(&pass_lock, &self)) /* any address inside the shim */
        return;
    p.shim_base = (uintptr_t)self.dli_fbase;
    pthread_mutex_lock(&pass_lock);
    dl_iterate_phdr(collect_hooks, &p);
    for (size_t i = 0; i < p.nhooks; i++) {
        p.hooks[i].next = dlsym(RTLD_NEXT, p.hooks[i].name);
        p.hooks[i].deep = dlsym(handle, p.hooks[i].name);
    }
    dl_iterate_phdr(patch_object, &p);
    pthread_mutex_unlock(&pass_lock);
    if (p.redirected && secure_getenv("RATELIMIT_DEBUG"))
        shim_say("%s was loaded with RTLD_DEEPBIND: %u of its calls redirected to the shim", file,
                 p.redirected);
}

/* ------------------------------------------------------------------ dlopen */

static dlopen_fn next_dlopen(void)
{
    void *fn = rl__ptr_load_acquire(&shim_next_dlopen); /* G1 */
    dlopen_fn f;
    if (!fn) {
        fn = dlsym(RTLD_NEXT, "dlopen");
        if (!fn)
            return NULL;
        rl__ptr_store_release(&shim_next_dlopen, fn); /* G1: every thread finds the same */
    }
    memcpy(&f, &fn, sizeof(f));
    return f;
}

__attribute__((constructor)) static void shim_deepbind_init(void)
{
    next_dlopen();
}

/* The caller's link map, as a dlinfo handle; NULL if caller is in no object. */
static void *caller_map(const void *caller)
{
    Dl_info info;
    struct link_map *map = NULL;
    if (!caller || !dladdr1(caller, &info, (void **)&map, RTLD_DL_LINKMAP))
        return NULL;
    return map;
}

/* `file` as glibc would find it for `caller`: $ORIGIN is the caller's directory; a name
 * without '/' is looked for along the caller's search path (LD_LIBRARY_PATH, its RPATH or
 * RUNPATH, the system directories); not found there, the name goes as given (the
 * ld.so.cache lookup depends on no caller). Returns file or buf. */
static const char *for_caller(const char *file, const void *caller, char *buf, size_t len)
{
    void *map;
    if (!file || !(map = caller_map(caller)))
        return file;
    const char *rest = strncmp(file, "$ORIGIN/", 8) == 0      ? file + 7
                       : strncmp(file, "${ORIGIN}/", 10) == 0 ? file + 9
                                                              : NULL;
    char origin[4096];
    if (rest) {
        if (dlinfo(map, RTLD_DI_ORIGIN, origin) != 0 ||
            snprintf(buf, len, "%s%s", origin, rest) >= (int)len)
            return file;
        return buf;
    }
    if (strchr(file, '/'))
        return file;
    void *loaded = next_dlopen()(file, RTLD_LAZY | RTLD_NOLOAD);
    if (loaded) { /* already loaded: found by name, whoever asks */
        dlclose(loaded);
        return file;
    }
    Dl_serinfo size;
    if (dlinfo(map, RTLD_DI_SERINFOSIZE, &size) != 0)
        return file;
    Dl_serinfo *paths = malloc(size.dls_size);
    const char *found = file;
    if (paths && memcpy(paths, &size, sizeof(size)) && dlinfo(map, RTLD_DI_SERINFO, paths) == 0)
        for (unsigned i = 0; i < paths->dls_cnt && found == file; i++)
            if (snprintf(buf, len, "%s/%s", paths->dls_serpath[i].dls_name, file) < (int)len &&
                access(buf, F_OK) == 0)
                found = buf;
    free(paths);
    return found;
}

void *shim_dlopen_from(const char *file, int mode, const void *caller)
{
    char buf[4096];
    dlopen_fn real = next_dlopen();
    if (!real)
        return NULL;
    const char *path = for_caller(file, caller, buf, sizeof(buf));
    void *handle = real(path, mode);
    if (handle && (mode & RTLD_DEEPBIND)) {
        deepbind_pass(handle, path);
        dlerror(); /* the pass's lookups leave no error behind a successful load */
    }
    return handle;
}

#if defined(__x86_64__)
/* dlopen(file, mode): without RTLD_DEEPBIND (mode in %esi), a jump to the next dlopen, so
 * glibc sees the caller's return address; else (or before the constructor) the C path,
 * with the caller's return address as the third argument. */
#ifdef __CET__
#define ENDBR "endbr64\n"
#else
#define ENDBR ""
#endif
#define STR2(x) #x
#define STR(x)  STR2(x)
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n" ENDBR "  testl $" STR(RTLD_DEEPBIND) ", %esi\n"
                                                         "  jnz 1f\n"
                                                         "  movq shim_next_dlopen(%rip), %rax\n"
                                                         "  testq %rax, %rax\n"
                                                         "  jz 1f\n"
                                                         "  jmp *%rax\n"
                                                         "1:\n"
                                                         "  movq (%rsp), %rdx\n"
                                                         "  jmp shim_dlopen_from\n"
                                                         ".size dlopen, .-dlopen\n");
#else
EXPORT void *dlopen(const char *file, int mode)
{
    return shim_dlopen_from(file, mode, __builtin_return_address(0));
}
#endif
