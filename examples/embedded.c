/*
 * embedded.c: a program that links libsquire and registers its handlers
 * itself, instead of loading a plugin with -r. It keeps every squire flag:
 *
 *     ./build/squire-embedded -C config/sidekiq.yml -c 10
 */
#include <squire.h>

static sq_result report_job(sq_job *job, void *userdata)
{
    const char *greeting = userdata;
    json_t *id = sq_job_arg(job, 0);
    if (!json_is_integer(id))
        return sq_job_fail(job, "ArgumentError", "expected a report id");
    sq_job_log(job, "%s: building report %lld", greeting, (long long)json_integer_value(id));
    return SQ_OK;
}

int main(int argc, char **argv)
{
    sq_registry *reg = sq_registry_new();
    if (reg == NULL || sq_register(reg, "ReportJob", report_job, "embedded") != 0)
        return 1;
    int status = sq_main(argc, argv, reg);
    sq_registry_free(reg);
    return status;
}
