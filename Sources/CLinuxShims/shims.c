#define _GNU_SOURCE
#include "CLinuxShims.h"
#ifdef __linux__
#include <malloc.h>
#include <sys/prctl.h>
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
