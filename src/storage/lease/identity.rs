//! Where a lease holder runs, and whether a holder on this machine is
//! still alive: what lets a restarted job take over at once from a crashed
//! one on the same node instead of waiting out the lease.
//!
//! A process is named by its kernel boot, pid namespace, pid and start
//! time (in clock ticks since boot), so a reused pid or a process in
//! another container is never mistaken for the holder. Off Linux (or
//! without `/proc`) the fields are empty and no holder is judged by its
//! process: a watcher waits for the lease to lapse instead.

use std::fs;

/// A process, as far as another process can recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Host name, for messages only.
    pub host: String,
    /// The kernel's boot id; empty when unknown.
    pub boot: String,
    /// The pid namespace (`pid:[4026531836]`); empty when unknown.
    pub pid_namespace: String,
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot; 0 when unknown.
    pub start_ticks: u64,
}

impl Identity {
    /// This process.
    pub(crate) fn current() -> Identity {
        let pid = std::process::id();
        Identity {
            host: read_trimmed("/proc/sys/kernel/hostname")
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_default(),
            boot: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            pid_namespace: fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether this process can see `other`'s process table: same boot of
    /// the same kernel and same pid namespace, both known.
    pub(crate) fn shares_process_table(&self, other: &Identity) -> bool {
        !self.boot.is_empty()
            && !self.pid_namespace.is_empty()
            && self.start_ticks != 0
            && self.boot == other.boot
            && self.pid_namespace == other.pid_namespace
    }

    /// Whether this is the calling process itself.
    pub(crate) fn is_this_process(&self, current: &Identity) -> bool {
        current.shares_process_table(self)
            && self.pid == current.pid
            && self.start_ticks == current.start_ticks
    }

    /// Whether the process is still running; only meaningful when
    /// [`shares_process_table`](Self::shares_process_table) holds.
    pub(crate) fn is_running(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_a_changed_start_time_is_not() {
        let me = Identity::current();
        if !me.shares_process_table(&me) {
            return; // no /proc here: nothing is judged by process
        }
        assert!(me.is_this_process(&Identity::current()));
        assert!(me.is_running());
        let reused_pid = Identity {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!reused_pid.is_running(), "a reused pid is another process");
        let elsewhere = Identity {
            pid_namespace: "pid:[1]".to_owned(),
            ..me.clone()
        };
        assert!(!me.shares_process_table(&elsewhere));
    }
}
