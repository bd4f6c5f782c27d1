/* ctl — the workload verbs of plinthctl ("plinthctl kube <verb> ..."): apply, create, get,
 * describe, delete, run, scale, rollout, cordon, uncordon. */
#ifndef PLINTH_SCHED_CTL_H
#define PLINTH_SCHED_CTL_H

/* Runs one workload verb. argv[0] is the group name ("kube"), argv[1] the verb; the global
 * flags --endpoints, --cacert, --cert, --key (and --dial-timeout, --command-timeout) may
 * appear anywhere and are parsed here too. argv is borrowed and not modified.
 * Prints results on stdout and errors on stderr ("kube: get: pods: ...").
 * Returns the process exit code: 0 on success, 1 on a failed operation, 2 on a usage error. */
int sched_ctl_main(int argc, char **argv);

#endif
