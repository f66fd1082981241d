#ifndef DEALSTREAM_CLINUXSHIMS_H
#define DEALSTREAM_CLINUXSHIMS_H

/// Asks the kernel to send `signal` to this process when its parent dies
/// (prctl(PR_SET_PDEATHSIG)), so no worker outlives a daemon killed with SIGKILL.
/// Returns 0 on success, -1 with errno set otherwise.
int CLinuxShims_setParentDeathSignal(int signal);

/// Returns the heap's free memory to the kernel (glibc's malloc_trim(0)). A large
/// transient (a rebuild of a million deals) otherwise stays in the process's RSS.
void CLinuxShims_releaseFreeMemory(void);

/// Names the calling thread (prctl(PR_SET_NAME); at most 15 bytes are kept), so `top -H`,
/// `perf` and a stuck-process dump show which thread is which.
/// Returns 0 on success, -1 with errno set otherwise.
int CLinuxShims_setThreadName(const char *name);

/// The calling thread's kernel id (gettid()), as in /proc/<pid>/task/<tid>.
int CLinuxShims_threadID(void);

/// Asks the scheduler for a short time slice for the calling thread (sched_setattr with
/// SCHED_OTHER, its nice value kept, and `nanoseconds` as sched_runtime: EEVDF's custom
/// slice, Linux 6.12 and later, no privilege needed). A thread with a shorter slice gets
/// an earlier deadline, so when it wakes on a busy machine it runs before the threads that
/// asked for none, instead of waiting for a core for milliseconds.
/// Returns 0 on success, -1 with errno set otherwise (an older kernel: EINVAL or ENOSYS).
int CLinuxShims_requestShortSlice(unsigned long long nanoseconds);

#endif
