/* plinth-scheduler — thin entry point; the program lives in sched/ (sched_scheduler_main). */
#include "sched/daemon.h"

int main(int argc, char **argv)
{
    return sched_scheduler_main(argc, argv);
}
