//! The process's CPU time, from getrusage: openraft runs its nodes on a
//! multi-thread runtime while raftkv's bench runs on one thread, so writes per
//! CPU-second compare the work, and writes per second the wall-clock result.

use std::time::Duration;

/// User and system CPU time used by every thread of the process so far.
#[derive(Debug, Clone, Copy)]
pub struct CpuTime {
    /// Time spent running the program's own code.
    pub user: Duration,
    /// Time spent in the kernel on its behalf.
    pub system: Duration,
}

fn duration(tv: libc::timeval) -> Duration {
    // Both fields are non-negative for getrusage's results; clamp rather than trust.
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

impl CpuTime {
    /// Reads it now; `None` if the kernel refuses (it does not for RUSAGE_SELF).
    pub fn now() -> Option<CpuTime> {
        // SAFETY: getrusage only writes the struct it is given, which is a
        // zeroed, properly aligned `rusage` that lives across the call.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        (rc == 0).then(|| CpuTime { user: duration(usage.ru_utime), system: duration(usage.ru_stime) })
    }

    /// The CPU time used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }

    /// User plus system.
    pub fn total(self) -> Duration {
        self.user + self.system
    }
}
