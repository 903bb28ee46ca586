/*
 * pq.c: libpq.so.5, opened on first use instead of linked.
 *
 * Loaded once per process (pthread_once), RTLD_LOCAL, and never closed,
 * not even when a function is missing: the failure is remembered, and
 * unloading libssl and friends mid-process is riskier than one handle.
 * A handler plugin linked with -lpq maps the same libpq.so.5 (the dynamic
 * linker matches the soname of a library already loaded), so the PGconn
 * the pool lends it is one its own PQ* calls understand.
 */
#include "pq.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "common.h"

#define SQ_PQ_SONAME "libpq.so.5"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sq_pq table;
static bool loaded;
static char why[512]; /* set when loading failed */

static void load(void)
{
    void *h = dlopen(SQ_PQ_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(why, sizeof why, "%s", dlerror());
        return;
    }
    dlerror();
#define SQ_PQ_LOOKUP(f)                                                                            \
    if ((*(void **)&table.f = dlsym(h, #f)) == NULL) {                                             \
        const char *e = dlerror();                                                                 \
        snprintf(why, sizeof why, "%s", e ? e : #f ": not found");                                 \
        return;                                                                                    \
    }
    SQ_PQ_FUNCTIONS(SQ_PQ_LOOKUP)
#undef SQ_PQ_LOOKUP
    loaded = true;
}

const sq_pq *sq_pq_load(sq_error *err)
{
    pthread_once(&once, load);
    if (loaded)
        return &table;
    sq__error_set(err, SQ_EIO, "cannot load PostgreSQL's client library " SQ_PQ_SONAME ": %s", why);
    return NULL;
}
