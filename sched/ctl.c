/* ctl — entry point of the workload verbs of plinthctl ("plinthctl kube ..."). */
#include "sched/ctl.h"

#include <stdio.h>

int sched_ctl_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kube: workload verbs are not built yet\n");
    return 1;
}
