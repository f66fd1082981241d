#define _GNU_SOURCE
#include "CLinuxShims.h"
#ifdef __linux__
#include <malloc.h>
#include <sys/prctl.h>
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int CLinuxShims_setParentDeathSignal(int signal) {
#ifdef __linux__
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0);
#else
    (void)signal;
    return 0;
#endif
}

void CLinuxShims_releaseFreeMemory(void) {
#ifdef __linux__
    malloc_trim(0);
#endif
}

int CLinuxShims_setThreadName(const char *name) {
#ifdef __linux__
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
#else
    (void)name;
    return 0;
#endif
}

int CLinuxShims_threadID(void) {
#ifdef __linux__
    return (int)gettid();
#else
    return 0;
#endif
}

int CLinuxShims_requestShortSlice(unsigned long long nanoseconds) {
#if defined(__linux__) && defined(SYS_sched_setattr)
    struct {
        uint32_t size;
        uint32_t sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime;
        uint64_t sched_deadline;
        uint64_t sched_period;
    } attr = {0};
    attr.size = sizeof(attr);
    attr.sched_policy = 0; /* SCHED_OTHER */
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    if (nice == -1 && errno != 0) return -1;
    attr.sched_nice = nice;
    attr.sched_runtime = nanoseconds;
    return (int)syscall(SYS_sched_setattr, 0, &attr, 0);
#else
    (void)nanoseconds;
    errno = ENOSYS;
    return -1;
#endif
}
