#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "registry.h"

int sq_plugin_load(sq_registry *reg, const char *path, sq_error *err)
{
    char buf[4096];
    const char *p = path;
    struct stat st;

    if (strchr(path, '/') == NULL) {
        snprintf(buf, sizeof buf, "./%s", path);
        p = buf;
    }
    if (stat(p, &st) != 0) {
        sq__error_set(err, SQ_ECONFIG, "require %s: no such file", path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        sq__error_set(err, SQ_ECONFIG,
                      "require %s: is a directory; expected a shared object (.so) of handlers",
                      path);
        return -1;
    }
    void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        sq__error_set(err, SQ_ECONFIG, "require %s: %s", path, dlerror());
        return -1;
    }
    sq_plugin_init_fn init;
    *(void **)&init = dlsym(h, SQ_PLUGIN_INIT_SYMBOL);
    if (init == NULL) {
        sq__error_set(err, SQ_ECONFIG, "require %s: no %s() in it; a handler plugin exports "
                      "int %s(sq_registry *)", path, SQ_PLUGIN_INIT_SYMBOL, SQ_PLUGIN_INIT_SYMBOL);
        dlclose(h);
        return -1;
    }
    int rc = init(reg);
    if (rc != 0) {
        sq__error_set(err, SQ_ECONFIG, "require %s: %s() returned %d", path,
                      SQ_PLUGIN_INIT_SYMBOL, rc);
        dlclose(h);
        return -1;
    }
    /* The handle stays open for the life of the process: handlers live in it. */
    return 0;
}
