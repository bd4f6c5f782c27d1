/* agent_proc — private to plinth-agent: runs a container's command as a local process. */
#ifndef PLINTH_SCHED_AGENT_PROC_H
#define PLINTH_SCHED_AGENT_PROC_H

#include <sys/types.h>

#include <jansson.h>

/* Starts a container (spec.containers[i], borrowed) as a process in its own process group:
 * command + args through execvp (no command: an idle "sleep infinity"), env from the
 * container plus PLINTH_POD_NAME, PLINTH_POD_NAMESPACE, PLINTH_NODE_NAME; stdout and
 * stderr appended to <log_dir>/<ns>_<pod>_<container>.log (NULL: /dev/null). The process
 * is killed if the agent dies. Returns the pid, or -1 when fork fails (a failing exec
 * shows as exit code 127). */
pid_t agent_proc_start(const json_t *container, const char *ns, const char *pod,
                       const char *node, const char *log_dir);

/* Sends sig to the process group of pid (or to pid alone if that fails). */
void agent_proc_signal(pid_t pid, int sig);

/* Reaps one exited child without blocking: returns its pid and its exit code (128+signal
 * when killed), or 0 when none has exited. */
pid_t agent_proc_reap(int *exit_code);

#endif
