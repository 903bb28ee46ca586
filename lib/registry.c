/*
 * registry.c: class name -> handler, exact match only.
 *
 * Handlers are registered on the main thread before any worker starts; after
 * that the table is only read, so lookups take no lock. A job's class name
 * comes from Redis and is never used for a symbol lookup: a name that is not
 * in this table is an ordinary job failure.
 */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    char *name;
    sq_handler_fn fn;
    void *userdata;
    double timeout; /* seconds; 0: the config's job_timeout */
};

struct sq_registry {
    struct entry *slots; /* open addressing, linear probing; NULL name = empty */
    size_t cap;          /* power of two */
    size_t count;
    sq_child_init_fn child_init; /* isolated mode: run in each worker process */
    void *child_init_ud;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

sq_registry *sq_registry_new(void)
{
    sq_registry *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        return NULL;
    reg->cap = 16;
    reg->slots = calloc(reg->cap, sizeof *reg->slots);
    if (reg->slots == NULL) {
        free(reg);
        return NULL;
    }
    return reg;
}

void sq_registry_free(sq_registry *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->cap; i++)
        free(reg->slots[i].name);
    free(reg->slots);
    free(reg);
}

static struct entry *find_slot(struct entry *slots, size_t cap, const char *name)
{
    size_t i = (size_t)hash_name(name) & (cap - 1);
    while (slots[i].name != NULL && strcmp(slots[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(sq_registry *reg)
{
    size_t cap = reg->cap * 2;
    struct entry *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < reg->cap; i++)
        if (reg->slots[i].name != NULL)
            *find_slot(slots, cap, reg->slots[i].name) = reg->slots[i];
    free(reg->slots);
    reg->slots = slots;
    reg->cap = cap;
    return 0;
}

int sq_register(sq_registry *reg, const char *class_name, sq_handler_fn fn, void *userdata)
{
    return sq_register_opts(reg, class_name, fn, userdata, NULL);
}

int sq_register_opts(sq_registry *reg, const char *class_name, sq_handler_fn fn, void *userdata,
                     const sq_handler_opts *opts)
{
    if (reg == NULL || class_name == NULL || class_name[0] == '\0' || fn == NULL)
        return -1;
    double timeout = opts != NULL ? opts->timeout : 0;
    if (!(timeout >= 0) || timeout > 1e9) /* NaN too */
        return -1;
    if ((reg->count + 1) * 2 > reg->cap && grow(reg) != 0)
        return -1;
    struct entry *e = find_slot(reg->slots, reg->cap, class_name);
    if (e->name == NULL) {
        e->name = strdup(class_name);
        if (e->name == NULL)
            return -1;
        reg->count++;
    }
    e->fn = fn;
    e->userdata = userdata;
    e->timeout = timeout;
    return 0;
}

int sq_register_child_init(sq_registry *reg, sq_child_init_fn fn, void *userdata)
{
    if (reg == NULL)
        return -1;
    reg->child_init = fn;
    reg->child_init_ud = userdata;
    return 0;
}

sq_child_init_fn sq_registry_child_init(const sq_registry *reg, void **userdata)
{
    if (reg == NULL)
        return NULL;
    *userdata = reg->child_init_ud;
    return reg->child_init;
}

double sq_registry_timeout(const sq_registry *reg, const char *class_name)
{
    if (reg == NULL || class_name == NULL)
        return 0;
    struct entry *e = find_slot(reg->slots, reg->cap, class_name);
    return e->name != NULL ? e->timeout : 0;
}

sq_handler_fn sq_registry_lookup(const sq_registry *reg, const char *class_name, void **userdata)
{
    if (reg == NULL || class_name == NULL)
        return NULL;
    struct entry *e = find_slot(reg->slots, reg->cap, class_name);
    if (e->name == NULL)
        return NULL;
    if (userdata != NULL)
        *userdata = e->userdata;
    return e->fn;
}

size_t sq_registry_count(const sq_registry *reg)
{
    return reg ? reg->count : 0;
}

size_t sq_registry_names(const sq_registry *reg, const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; reg && i < reg->cap && n < max; i++)
        if (reg->slots[i].name != NULL)
            names[n++] = reg->slots[i].name;
    return n;
}
