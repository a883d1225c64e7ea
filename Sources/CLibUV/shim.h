#include <uv.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>

// Helpers for GNU extensions that Swift's Glibc module does not declare.
#if defined(__linux__)
extern int pipe2(int pipefd[2], int flags);
extern int pthread_setname_np(pthread_t thread, const char *name);

// A pipe whose both ends are close-on-exec, created atomically.
static inline int verge_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

// Names the calling thread (the kernel keeps the first 15 bytes).
static inline int verge_set_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}
#endif
