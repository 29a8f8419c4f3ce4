/* Reset in place: a per-request instance put back into its post-configure snapshot's
 * state (memory and mutable globals), and a fresh instance given that state (restore).
 * Instance.restore and Instance.reset are these; see snapshot.py for the images they
 * take and vm.py (Vm.restore, Vm.recycle) for when they run. */
#include <sys/mman.h>

#include "hostcore.h"
#include "reset.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>


/* The handles of the globals exported as ``names`` (a sequence of bytes), found once per
 * instance: looking each up by name cost more than the rest of a small module's reset.
 * The names object is kept, so another object (a reloaded stage's) finds them again.
 * 0, or -1 with an error set. */
static int find_globals(Instance *self, PyObject *names) {
    if (names == self->global_names) return 0;
    PyObject *seq = PySequence_Fast(names, "names must be a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    wt_extern *found = PyMem_Malloc(sizeof(wt_extern) * (size_t)(n > 0 ? n : 1));
    if (found == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        char *name;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(seq, i), &name, &len) < 0) goto fail;
        if (!WT.instance_export_get(self->ctx, &self->instance, name, (size_t)len, &found[i]) ||
            found[i].kind != WT_EXTERN_GLOBAL) {
            PyErr_Format(hc_instantiate_error, "snapshot global %s is not exported", name);
            goto fail;
        }
    }
    Py_DECREF(seq);
    hc_forget_globals(self);
    Py_INCREF(names);
    self->global_names = names;
    self->globals = found;
    self->nglobals = n;
    return 0;
fail:
    Py_DECREF(seq);
    PyMem_Free(found);
    return -1;
}

/* Each exported global named in ``names`` set from the wasmtime_val_t array at
 * ``values_addr`` (one per name, in order): 0, or -1 with an error set. */
static int write_globals(Instance *self, PyObject *names, unsigned long long values_addr, Py_ssize_t value_size) {
    if (find_globals(self, names) < 0) return -1;
    for (Py_ssize_t i = 0; i < self->nglobals; i++) {
        uintptr_t value = (uintptr_t)(values_addr + (unsigned long long)i * (unsigned long long)value_size);
        wasmtime_error_t *err = WT.global_set(self->ctx, &self->globals[i].of, (const void *)value);
        if (err != NULL) {
            hc_instantiate_failed(err);
            return -1;
        }
    }
    return 0;
}

/* restore(memory_size, pages, globals, values_addr, value_size): the state of a
 * post-configure snapshot (snapshot.py) written into this fresh instance: memory grown to
 * memory_size, each (offset, bytes) page written, each exported global set. */
PyObject *hc_instance_restore(Instance *self, PyObject *args) {
    unsigned long long size, values_addr;
    PyObject *pages, *names;
    Py_ssize_t value_size;
    if (!PyArg_ParseTuple(args, "KOOKn", &size, &pages, &names, &values_addr, &value_size)) return NULL;
    size_t have = WT.memory_data_size(self->ctx, &self->memory);
    if (size > have) {
        uint64_t prev;
        wasmtime_error_t *err = WT.memory_grow(self->ctx, &self->memory, (size - have) / 65536, &prev);
        if (err != NULL) {
            hc_instantiate_failed(err);
            return NULL;
        }
    }
    PyObject *seq = PySequence_Fast(pages, "pages must be a sequence");
    if (seq == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        unsigned long long off;
        const char *data;
        Py_ssize_t len;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "Ky#", &off, &data, &len)) {
            Py_DECREF(seq);
            return NULL;
        }
        uint8_t *dst = hc_mem(self, off, (uint64_t)len);
        if (dst == NULL) {
            Py_DECREF(seq);
            PyErr_SetString(hc_instantiate_error, "snapshot page outside memory");
            return NULL;
        }
        memcpy(dst, data, (size_t)len);
    }
    Py_DECREF(seq);
    if (write_globals(self, names, values_addr, value_size) < 0) return NULL;
    Py_RETURN_NONE;
}

/* --- reset in place ------------------------------------------------------------------- */

#define RESET_PAGE 4096
#define RESET_ZERO 0xFFFFFFFFu
/* pagemap entries read per pread */
#define PAGEMAP_CHUNK 512
/* a pagemap entry's "present" and "swapped" bits: the page has been mapped since the
 * memory was; an entry without either has never been touched (reads the mapping's
 * initial contents) */
#define PAGEMAP_TOUCHED ((1ULL << 63) | (1ULL << 62))

/* PAGEMAP_SCAN (Linux 6.7+, <linux/fs.h>; declared here for older headers): the ranges
 * of pages in given categories, instead of one pagemap entry per page */
struct hc_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
        category_anyof_mask, return_mask;
};
struct hc_page_region {
    uint64_t start, end, categories;
};
#define HC_PAGEMAP_SCAN _IOWR('f', 16, struct hc_pm_scan_arg)
#define HC_PAGE_IS_PRESENT (1 << 3)
#define HC_PAGE_IS_SWAPPED (1 << 4)
#define HC_PAGE_IS_PFNZERO (1 << 5)
#define SCAN_REGIONS 64

static const uint8_t zero_page[RESET_PAGE];
static int pagemap_fd = -1;
static int pagemap_opened = 0;
static int pagemap_scan = 1; /* PAGEMAP_SCAN works (cleared at its first failure) */

/* A forked child opens its own: the parent's file is the parent's page table. */
static void pagemap_forget(void) {
    if (pagemap_fd >= 0) close(pagemap_fd);
    pagemap_fd = -1;
    pagemap_opened = 0;
}

/* This process's /proc/self/pagemap, or -1 where there is none or pages are not 4 KiB. */
static int pagemap(void) {
    if (!pagemap_opened) {
        static int registered = 0;
        if (!registered) registered = pthread_atfork(NULL, NULL, pagemap_forget) == 0;
        pagemap_fd = sysconf(_SC_PAGESIZE) == RESET_PAGE ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
        pagemap_opened = 1;
    }
    return pagemap_fd;
}

typedef struct {
    uint8_t *mem;
    const uint32_t *index;
    const uint8_t *pages;
    size_t npages; /* of memory */
    size_t nimage; /* in ``pages`` */
    int trim;      /* unmap the zero pages found unchanged (trim_zero_pages) */
} ResetImage;

/* Pages [first, last) unmapped (MADV_DONTNEED): each reads zeros again through the
 * kernel's shared zero page until written, which the scan skips (HC_PAGE_IS_PFNZERO).
 * Where the mapping underneath is the module's image rather than anonymous memory a
 * page reads that image again, so each is checked and zeroed if it does not read zeros. */
static void trim_zero_pages(const ResetImage *r, size_t first, size_t last) {
    uint8_t *start = r->mem + first * RESET_PAGE;
    if (madvise(start, (last - first) * RESET_PAGE, MADV_DONTNEED) != 0) return; /* left as they were: zeros */
    for (uint8_t *page = start; page < r->mem + last * RESET_PAGE; page += RESET_PAGE)
        if (memcmp(page, zero_page, RESET_PAGE) != 0) memset(page, 0, RESET_PAGE);
}

/* Pages [first, last) made equal to the image; -1 (ValueError) for a bad index.  With
 * ``trim``, runs of zero pages that were already equal are unmapped. */
static int reset_range(const ResetImage *r, size_t first, size_t last) {
    if (last > r->npages) last = r->npages;
    size_t run = last; /* the first page of a run of unchanged zero pages; last: none */
    for (size_t p = first; p < last; p++) {
        uint32_t k = r->index[p];
        const uint8_t *src = k == RESET_ZERO ? zero_page : r->pages + (size_t)k * RESET_PAGE;
        if (k != RESET_ZERO && k >= r->nimage) {
            PyErr_SetString(PyExc_ValueError, "reset image index out of range");
            return -1;
        }
        uint8_t *dst = r->mem + p * RESET_PAGE;
        if (memcmp(dst, src, RESET_PAGE) != 0) {
            memcpy(dst, src, RESET_PAGE);
        } else if (r->trim && k == RESET_ZERO) {
            if (run == last) run = p;
            continue;
        }
        if (run != last) trim_zero_pages(r, run, p);
        run = last;
    }
    if (run != last) trim_zero_pages(r, run, last);
    return 0;
}

/* The touched pages reset, found with PAGEMAP_SCAN: 0, -1 error set, 1 the scan is not
 * available (nothing done that matters: resetting a page twice is harmless).  Pages
 * mapped to the kernel's zero page are skipped: they read zeros and were never written
 * (a write replaces the mapping), and a page whose snapshot is not all zeros is never
 * such a page at a stream's start, as it equals the snapshot then. */
static int reset_scanned(const ResetImage *r, int fd) {
    struct hc_page_region regions[SCAN_REGIONS];
    uintptr_t base = (uintptr_t)r->mem;
    struct hc_pm_scan_arg arg = {
        .size = sizeof arg, .start = base, .end = base + r->npages * RESET_PAGE, .vec = (uintptr_t)regions,
        .vec_len = SCAN_REGIONS, .category_inverted = HC_PAGE_IS_PFNZERO, .category_mask = HC_PAGE_IS_PFNZERO,
        .category_anyof_mask = HC_PAGE_IS_PRESENT | HC_PAGE_IS_SWAPPED,
        .return_mask = HC_PAGE_IS_PRESENT | HC_PAGE_IS_SWAPPED,
    };
    for (;;) {
        int n = ioctl(fd, HC_PAGEMAP_SCAN, &arg);
        if (n < 0) {
            pagemap_scan = 0; /* the entries read next count zero-page mappings as touched */
            return 1;
        }
        for (int i = 0; i < n; i++)
            if (reset_range(r, (regions[i].start - base) / RESET_PAGE, (regions[i].end - base) / RESET_PAGE) < 0)
                return -1;
        if (arg.walk_end >= arg.end) return 0;
        arg.start = arg.walk_end;
    }
}

/* The touched pages reset, found by reading pagemap entries (or every page when there
 * is no pagemap): 0, or -1 with an error set. */
static int reset_entries(const ResetImage *r, int fd) {
    uint64_t entries[PAGEMAP_CHUNK];
    for (size_t start = 0; start < r->npages; start += PAGEMAP_CHUNK) {
        size_t n = r->npages - start < PAGEMAP_CHUNK ? r->npages - start : PAGEMAP_CHUNK;
        off_t at = (off_t)(((uintptr_t)r->mem / RESET_PAGE + start) * 8);
        if (fd < 0 || pread(fd, entries, n * 8, at) != (ssize_t)(n * 8)) {
            if (reset_range(r, start, start + n) < 0) return -1;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if ((entries[i] & PAGEMAP_TOUCHED) && reset_range(r, start + i, start + i + 1) < 0) return -1;
    }
    return 0;
}

/* reset(size, index, pages, names, values_addr, value_size, trim) -> bool: a used per-request
 * instance put back into its post-configure snapshot's state: linear memory made equal
 * to the snapshot's started memory again (snapshot.ResetImage: per 4 KiB page a uint32
 * in ``index``, the page's number in ``pages`` or 0xFFFFFFFF for zeros), then the
 * mutable globals written (as restore() writes them).  Only pages the process's page
 * table says were ever touched (present or swapped out) are compared: an untouched
 * page still reads what the instance started with, which is the snapshot's.  C filters
 * start with 16 MiB of memory of which a stream touches a few dozen pages, so the page
 * table is asked for ranges (PAGEMAP_SCAN) rather than one entry per page where the
 * kernel can.  Pages that differ are copied.  With ``trim`` (an instance's first reset),
 * zero pages found unchanged are unmapped, so later scans skip them until written: a
 * pooled instance starts with its first 64 KiB resident (prefault, and what wasmtime
 * keeps resident of a reused slot), most of it a stack's far end or heap no stream
 * touches, and comparing those pages was most of a reset's time.  False, with the
 * instance untouched, when the memory size differs (it grew). */
PyObject *hc_instance_reset(Instance *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "reset(size, index: bytes, pages: bytes, names, values_addr, value_size, trim)");
        return NULL;
    }
    unsigned long long want = PyLong_AsUnsignedLongLong(args[0]);
    unsigned long long values_addr = PyLong_AsUnsignedLongLong(args[4]);
    Py_ssize_t value_size = PyLong_AsSsize_t(args[5]);
    int trim = PyObject_IsTrue(args[6]);
    if (PyErr_Occurred()) return NULL;
    size_t size = self->store == NULL ? 0 : WT.memory_data_size(self->ctx, &self->memory);
    if (self->store == NULL || size != want || size % RESET_PAGE ||
        (size_t)PyBytes_GET_SIZE(args[1]) != size / RESET_PAGE * 4)
        Py_RETURN_FALSE;
    ResetImage r = {WT.memory_data(self->ctx, &self->memory), (const uint32_t *)PyBytes_AS_STRING(args[1]),
                    (const uint8_t *)PyBytes_AS_STRING(args[2]), size / RESET_PAGE,
                    (size_t)PyBytes_GET_SIZE(args[2]) / RESET_PAGE, trim};
    int fd = (uintptr_t)r.mem % RESET_PAGE ? -1 : pagemap();
    int rc = fd >= 0 && pagemap_scan ? reset_scanned(&r, fd) : 1;
    if (rc == 1) {
        r.trim = 0; /* the entries count pages mapped to the zero page as touched: no gain */
        rc = reset_entries(&r, fd);
    }
    if (rc < 0 || write_globals(self, args[3], values_addr, (Py_ssize_t)value_size) < 0) return NULL;
    Py_RETURN_TRUE;
}

PyMethodDef hc_reset_methods[] = {
    {"restore", (PyCFunction)hc_instance_restore, METH_VARARGS, "write a post-configure snapshot in"},
    {"reset", (PyCFunction)(void (*)(void))hc_instance_reset, METH_FASTCALL, "memory and globals back to a snapshot's"},
    {NULL},
};
