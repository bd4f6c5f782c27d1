/* plinth-controller — thin entry point; the program lives in sched/ (sched_controller_main). */
#include "sched/daemon.h"

int main(int argc, char **argv)
{
    return sched_controller_main(argc, argv);
}
