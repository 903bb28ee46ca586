#ifndef SQ_REGISTRY_H
#define SQ_REGISTRY_H

#include "squire.h"

/* The handler registered for exactly class_name, or NULL. */
sq_handler_fn sq_registry_lookup(const sq_registry *reg, const char *class_name, void **userdata);
/* The timeout class_name was registered with (seconds; 0: none given). */
double sq_registry_timeout(const sq_registry *reg, const char *class_name);
/* The per-process init hook of isolated mode (sq_register_child_init), or NULL. */
sq_child_init_fn sq_registry_child_init(const sq_registry *reg, void **userdata);
size_t sq_registry_count(const sq_registry *reg);
/* Up to max registered names (borrowed) into names; returns how many. */
size_t sq_registry_names(const sq_registry *reg, const char **names, size_t max);

/* Load a handler plugin: dlopen(path) and call its squire_plugin_init(reg).
 * A path without '/' is looked up in the current directory first.
 * Returns 0, or -1 with SQ_ECONFIG naming the file and the loader's error. */
int sq_plugin_load(sq_registry *reg, const char *path, sq_error *err);

#endif
