/* plinth-agent — thin entry point; the program lives in sched/ (sched_agent_main). */
#include "sched/daemon.h"

int main(int argc, char **argv)
{
    return sched_agent_main(argc, argv);
}
