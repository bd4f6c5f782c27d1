/* agent_proc — the node agent's process runner: a container is a local process group
 * started with fork/exec, stopped with SIGTERM then SIGKILL, reaped without blocking. */
#include "sched/agent_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sched/objects.h"

pid_t agent_proc_start(const json_t *container, const char *ns, const char *pod,
                       const char *node, const char *log_dir)
{
    size_t i;
    json_t *v;
    json_t *cmd = json_object_get(container, "command");
    json_t *args = json_object_get(container, "args");
    size_t n = json_array_size(cmd) + json_array_size(args);
    char **argv = calloc(n + 3, sizeof(*argv));
    if (!argv) return -1;
    size_t k = 0;
    json_array_foreach(cmd, i, v) argv[k++] = (char *)json_string_value(v);
    json_array_foreach(args, i, v) argv[k++] = (char *)json_string_value(v);
    if (json_array_size(cmd) == 0) {
        /* no command: an idle placeholder process keeps the container "running" */
        k = 0;
        argv[k++] = "sleep";
        argv[k++] = "infinity";
    }
    argv[k] = NULL;
    char logpath[1024] = "/dev/null";
    if (log_dir && *log_dir) {
        mkdir(log_dir, 0755);
        snprintf(logpath, sizeof(logpath), "%s/%s_%s_%s.log", log_dir, ns, pod,
                 sched_obj_str(container, "name"));
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        free(argv);
        return -1;
    }
    if (pid == 0) {
        /* the child: own process group (so the whole tree can be stopped), and it dies
         * with the agent, which would otherwise leave pods running that nobody tracks */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(137);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2) close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            if (nul > 0) close(nul);
        }
        json_array_foreach(json_object_get(container, "env"), i, v) {
            const char *name = json_string_value(json_object_get(v, "name"));
            const char *val = json_string_value(json_object_get(v, "value"));
            if (name) setenv(name, val ? val : "", 1);
        }
        setenv("PLINTH_POD_NAME", pod, 1);
        setenv("PLINTH_POD_NAMESPACE", ns, 1);
        setenv("PLINTH_NODE_NAME", node, 1);
        execvp(argv[0], argv);
        fprintf(stderr, "plinth-agent: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also from the parent, so a kill right after start finds the group */
    free(argv);
    return pid;
}

void agent_proc_signal(pid_t pid, int sig)
{
    if (pid <= 0) return;
    if (kill(-pid, sig) != 0) kill(pid, sig);
}

pid_t agent_proc_reap(int *exit_code)
{
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return 0;
    if (WIFEXITED(st)) *exit_code = WEXITSTATUS(st);
    else if (WIFSIGNALED(st)) *exit_code = 128 + WTERMSIG(st);
    else *exit_code = -1;
    return pid;
}
