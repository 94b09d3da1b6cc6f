//! Child processes of a test: the test binary itself, running one ignored
//! test of its own (the child half of a crash or lease test).

use std::process::{Child, Command, Stdio};

/// Kills the child if the parent test fails half-way.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command that runs this test binary's ignored test `test` alone, its
/// stdout piped to the parent (which reads its reports line by line), its
/// stderr inherited and no stdin. The caller adds the environment.
pub fn run_ignored_test(test: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}
