//! How a command fails: the message (with what to do next) and the exit
//! status scripts can test.

/// Exit statuses, as `--help` documents them.
pub mod exit {
    /// Success (for `verify`: the checkpoint verifies).
    pub const OK: u8 = 0;
    /// A checkpoint is damaged or missing: it does not verify, or there is
    /// none to act on.
    pub const DAMAGED: u8 = 1;
    /// Bad usage: arguments, options or a store name that cannot work.
    pub const USAGE: u8 = 2;
    /// A writer (a running checkpointer) holds the store.
    pub const BUSY: u8 = 3;
    /// The store could not be read or written (access, network, disk);
    /// some of these pass on a retry.
    pub const STORE: u8 = 4;
    /// The store was written by a newer ckpt: upgrade this tool.
    pub const NEWER: u8 = 5;
}

/// A command's failure.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong and what to do.
    pub message: String,
    /// The exit status ([`exit`]).
    pub code: u8,
}

impl Failure {
    /// Bad usage, with a message that says what to write instead.
    pub fn usage(message: String) -> Self {
        Failure {
            message,
            code: exit::USAGE,
        }
    }

    /// A damaged or missing checkpoint.
    pub fn damaged(message: String) -> Self {
        Failure {
            message,
            code: exit::DAMAGED,
        }
    }
}

impl From<ckpt::Error> for Failure {
    fn from(error: ckpt::Error) -> Self {
        use ckpt::ErrorKind as K;
        let (code, hint) = match error.kind() {
            K::Config | K::State => (exit::USAGE, ""),
            K::Conflict => (
                exit::BUSY,
                "; a checkpointer is writing this store: run this again once it has finished (read-only commands work meanwhile)",
            ),
            K::Damaged => (exit::DAMAGED, ""),
            K::NewerFormat => (exit::NEWER, "; upgrade ckpt to read it"),
            K::RetryLater => (exit::STORE, "; try again"),
            _ => (exit::STORE, ""),
        };
        Failure {
            message: format!("{}{hint}", error.report()),
            code,
        }
    }
}

impl From<serde_json::Error> for Failure {
    fn from(error: serde_json::Error) -> Self {
        Failure {
            message: format!("could not write JSON: {error}"),
            code: exit::STORE,
        }
    }
}
