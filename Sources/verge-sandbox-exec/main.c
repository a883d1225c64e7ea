// verge-sandbox-exec: the last step on the host's side of a worker's sandbox. It runs as root between the host's
// fork and bubblewrap, does what must happen before any code of the function can run, then executes bubblewrap:
//
//   1. joins the worker's cgroups (so every process the function starts is counted and limited from its first
//      instruction),
//   2. sets resource limits,
//   3. stages the paths the sandbox binds (bundle, runtime) inside a private mount namespace, so the unprivileged
//      bubblewrap can reach them whatever the permissions of the directories above them on the host,
//   4. drops to the worker's unprivileged uid/gid with no supplementary groups and no new privileges,
//   5. arranges to be killed if the host dies, then executes PROGRAM (bubblewrap).
//
// With --outbound, the worker gets outbound network through slirp4netns (see outbound.c): PROGRAM must be
// bubblewrap started with `--info-fd INFO_FD --block-fd BLOCK_FD`, and nothing of the function runs before the
// network is up.
//
// Before anything else, every descriptor from --keep-fds N on is closed: whatever the host had open without
// close-on-exec (listening sockets, connections) must never reach a function.
//
// Usage: verge-sandbox-exec --keep-fds N [--join FILE]... [--rlimit NAME=VALUE]... [--stage-root DIR] [--stage SRC NAME]...
//                           [--user UID:GID] [--parent PID] [--outbound SLIRP4NETNS INFO_FD BLOCK_FD]
//                           -- PROGRAM [ARG]...
//
// Any failure exits with status 125 and one line on stderr; nothing is executed then.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "outbound.h"

#define MAX_ITEMS 32

void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("verge-sandbox-exec: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    _exit(125);
}

unsigned long long number(const char *text, const char *what) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') fail("invalid %s '%s'", what, text);
    return value;
}

static int resource(const char *name) {
    if (strcmp(name, "nofile") == 0) return RLIMIT_NOFILE;
    if (strcmp(name, "fsize") == 0) return RLIMIT_FSIZE;
    if (strcmp(name, "core") == 0) return RLIMIT_CORE;
    if (strcmp(name, "as") == 0) return RLIMIT_AS;
    if (strcmp(name, "nproc") == 0) return RLIMIT_NPROC;
    if (strcmp(name, "stack") == 0) return RLIMIT_STACK;
    fail("unknown resource limit '%s'", name);
    return -1;
}

static void join_cgroup(const char *file) {
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open %s: %s", file, strerror(errno));
    char pid[32];
    int length = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)length) != length) fail("cannot join cgroup %s: %s", file, strerror(errno));
    close(fd);
}

static void stage(const char *root, char *const sources[], char *const names[], int count) {
    if (unshare(CLONE_NEWNS) != 0) fail("cannot create a mount namespace: %s", strerror(errno));
    // Nothing mounted from here on may reach the host's namespace.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fail("cannot make the mounts private: %s", strerror(errno));
    if (mount("verge-stage", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") != 0)
        fail("cannot mount the staging directory %s: %s", root, strerror(errno));
    for (int index = 0; index < count; index++) {
        const char *name = names[index];
        if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            fail("invalid stage name '%s'", name);
        char target[PATH_MAX];
        if (snprintf(target, sizeof target, "%s/%s", root, name) >= (int)sizeof target) fail("stage path too long");
        if (mkdir(target, 0755) != 0) fail("cannot create %s: %s", target, strerror(errno));
        if (mount(sources[index], target, NULL, MS_BIND | MS_REC, NULL) != 0)
            fail("cannot stage %s: %s", sources[index], strerror(errno));
        if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
            fail("cannot make %s read-only: %s", target, strerror(errno));
    }
    if (mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") != 0)
        fail("cannot make the staging directory read-only: %s", strerror(errno));
}

int main(int argc, char *argv[]) {
    char *joins[MAX_ITEMS];
    int join_count = 0;
    int limit_resources[MAX_ITEMS];
    unsigned long long limit_values[MAX_ITEMS];
    int limit_count = 0;
    const char *stage_root = NULL;
    char *stage_sources[MAX_ITEMS];
    char *stage_names[MAX_ITEMS];
    int stage_count = 0;
    int switch_user = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    pid_t parent = 0;
    const char *slirp4netns = NULL;
    int info_fd = -1;
    int block_fd = -1;
    int keep_fds = -1;

    int index = 1;
    for (; index < argc; index++) {
        const char *option = argv[index];
        if (strcmp(option, "--") == 0) {
            index++;
            break;
        }
        if (strcmp(option, "--join") == 0 && index + 1 < argc) {
            if (join_count == MAX_ITEMS) fail("too many --join");
            joins[join_count++] = argv[++index];
        } else if (strcmp(option, "--rlimit") == 0 && index + 1 < argc) {
            if (limit_count == MAX_ITEMS) fail("too many --rlimit");
            char *spec = argv[++index];
            char *equals = strchr(spec, '=');
            if (equals == NULL) fail("--rlimit takes NAME=VALUE, not '%s'", spec);
            *equals = '\0';
            limit_resources[limit_count] = resource(spec);
            limit_values[limit_count++] = number(equals + 1, "resource limit");
        } else if (strcmp(option, "--stage-root") == 0 && index + 1 < argc) {
            stage_root = argv[++index];
        } else if (strcmp(option, "--stage") == 0 && index + 2 < argc) {
            if (stage_count == MAX_ITEMS) fail("too many --stage");
            stage_sources[stage_count] = argv[++index];
            stage_names[stage_count++] = argv[++index];
        } else if (strcmp(option, "--user") == 0 && index + 1 < argc) {
            char *spec = argv[++index];
            char *colon = strchr(spec, ':');
            if (colon == NULL) fail("--user takes UID:GID, not '%s'", spec);
            *colon = '\0';
            uid = (uid_t)number(spec, "uid");
            gid = (gid_t)number(colon + 1, "gid");
            if (uid == 0 || gid == 0) fail("refusing to run a worker as root");
            switch_user = 1;
        } else if (strcmp(option, "--keep-fds") == 0 && index + 1 < argc) {
            keep_fds = (int)number(argv[++index], "descriptor count");
            if (keep_fds < 3 || keep_fds > 64) fail("--keep-fds must be between 3 and 64");
        } else if (strcmp(option, "--parent") == 0 && index + 1 < argc) {
            parent = (pid_t)number(argv[++index], "parent pid");
        } else if (strcmp(option, "--outbound") == 0 && index + 3 < argc) {
            slirp4netns = argv[++index];
            info_fd = (int)number(argv[++index], "info descriptor");
            block_fd = (int)number(argv[++index], "block descriptor");
            if (slirp4netns[0] != '/') fail("slirp4netns must be an absolute path, not '%s'", slirp4netns);
            if (info_fd < 3 || block_fd < 3 || info_fd == block_fd || info_fd > 255 || block_fd > 255)
                fail("invalid --outbound descriptors %d and %d", info_fd, block_fd);
        } else {
            fail("unknown or incomplete option '%s'", option);
        }
    }
    if (keep_fds < 0) fail("--keep-fds is required");
    // First: nothing of the host beyond the descriptors the worker is given.
    if (close_range((unsigned)keep_fds, ~0U, 0) != 0) fail("cannot close inherited descriptors: %s", strerror(errno));
    if (index >= argc) fail("no program to execute");
    if (argv[index][0] != '/') fail("the program must be an absolute path, not '%s'", argv[index]);
    if (stage_count > 0 && stage_root == NULL) fail("--stage needs --stage-root");

    for (int i = 0; i < join_count; i++) join_cgroup(joins[i]);
    for (int i = 0; i < limit_count; i++) {
        struct rlimit limit = {.rlim_cur = (rlim_t)limit_values[i], .rlim_max = (rlim_t)limit_values[i]};
        if (setrlimit(limit_resources[i], &limit) != 0) fail("cannot set a resource limit: %s", strerror(errno));
    }
    if (stage_root != NULL) stage(stage_root, stage_sources, stage_names, stage_count);
    // Still root: give the tenant's slirp4netns a usable /dev/net/tun in this private mount namespace.
    if (slirp4netns != NULL) outbound_prepare_tun(stage_root != NULL);

    if (switch_user) {
        if (setgroups(0, NULL) != 0) fail("cannot drop supplementary groups: %s", strerror(errno));
        if (setresgid(gid, gid, gid) != 0) fail("cannot switch to gid %u: %s", (unsigned)gid, strerror(errno));
        if (setresuid(uid, uid, uid) != 0) fail("cannot switch to uid %u: %s", (unsigned)uid, strerror(errno));
        if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
            fail("the switch to %u:%u did not take", (unsigned)uid, (unsigned)gid);
        if (setuid(0) == 0) fail("could regain root after dropping it");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("cannot set no_new_privs: %s", strerror(errno));
    // Set after the user switch (which clears it): if the host dies, so does the sandbox.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("cannot set the parent-death signal: %s", strerror(errno));
    if (parent != 0 && getppid() != parent) fail("the host exited before the worker started");
    // As the tenant's user, before bubblewrap: a child that attaches slirp4netns to the sandbox's network namespace
    // and only then lets the sandbox run.
    if (slirp4netns != NULL) outbound_start(slirp4netns, info_fd, block_fd);

    execv(argv[index], &argv[index]);
    fail("cannot execute %s: %s", argv[index], strerror(errno));
    return 125;
}
