#define _GNU_SOURCE
#include "verge_seccomp.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

int verge_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int verge_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int verge_seqpacket_pair(int fds[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds); }

int verge_send_with_fds(int socket, const void *bytes, size_t length, const int *fds, size_t count) {
    if (count > 16) return -EINVAL;
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int) * 16)];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec vector = {.iov_base = (void *)bytes, .iov_len = length};
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1};
    if (count > 0) {
        message.msg_control = control.space;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *item = CMSG_FIRSTHDR(&message);
        item->cmsg_level = SOL_SOCKET;
        item->cmsg_type = SCM_RIGHTS;
        item->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(item), fds, sizeof(int) * count);
    }
    ssize_t sent;
    do {
        sent = sendmsg(socket, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) return -errno;
    return (size_t)sent == length ? 0 : -EMSGSIZE;
}

int verge_seccomp_build(const char *const *denied, size_t count, int error, unsigned char **program, size_t *length,
                        const char **unknown) {
    *program = NULL;
    *length = 0;
    if (unknown) *unknown = NULL;
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
    if (filter == NULL) return -ENOMEM;
    // A binary tree over system call numbers: every call of the function passes the filter, in a few comparisons
    // rather than one per rule.
    int rc = seccomp_attr_set(filter, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t index = 0; index < count && rc == 0; index++) {
        int number = seccomp_syscall_resolve_name(denied[index]);
        if (number == __NR_SCMP_ERROR) {
            if (unknown) *unknown = denied[index];
            rc = -EINVAL;
            break;
        }
        rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(error), number, 0);
    }
    // clone(2) with a namespace flag: one rule per flag (rules on one system call are alternatives).
    const unsigned long namespaces[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
    for (size_t index = 0; index < sizeof namespaces / sizeof namespaces[0] && rc == 0; index++) {
        rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(error), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, namespaces[index], namespaces[index]));
    }
    if (rc == 0) rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    // Sockets of the families a function needs only: AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK. Others (AF_VSOCK,
    // AF_PACKET, AF_BLUETOOTH, ...) fail with EAFNOSUPPORT; some ignore network namespaces.
    for (int family = 0; family < 64 && rc == 0; family++) {
        if (family == AF_UNIX || family == AF_INET || family == AF_INET6 || family == AF_NETLINK) continue;
        rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)family));
        if (rc == 0)
            rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1,
                                  SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)family));
    }
    if (rc == 0)
        rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)64));
    if (rc == 0) {
        int fd = memfd_create("verge-seccomp", MFD_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
        } else {
            rc = seccomp_export_bpf(filter, fd);
            off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
            if (rc == 0 && size <= 0) rc = -EIO;
            if (rc == 0) {
                unsigned char *bytes = malloc((size_t)size);
                if (bytes == NULL) {
                    rc = -ENOMEM;
                } else if (pread(fd, bytes, (size_t)size, 0) != size) {
                    free(bytes);
                    rc = -EIO;
                } else {
                    *program = bytes;
                    *length = (size_t)size;
                }
            }
            close(fd);
        }
    }
    seccomp_release(filter);
    return rc;
}
