/*
 * squire: run Sidekiq jobs with C handlers. All the work is in libsquire;
 * handlers arrive as shared objects named by -r or :require:.
 */
#include <squire.h>

int main(int argc, char **argv)
{
    return sq_main(argc, argv, NULL);
}
