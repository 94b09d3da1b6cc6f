//! Child processes of a test: the test binary itself, running one ignored
//! test of its own (the child half of a crash or lease test).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

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

/// Spawns `command` (from [`run_ignored_test`], with its environment) and
/// a thread reading its stdout: each line ending in `<word> <step>` for
/// one of `words` is sent as (the word's index, the step). libtest prints
/// "test name ... " without a newline before the child test runs, so the
/// first report follows that on its line. The thread ends with the
/// child's stdout or when the receiver is dropped.
pub fn spawn_reporting(
    mut command: Command,
    words: &'static [&'static str],
) -> (Reaper, Receiver<(usize, u64)>, JoinHandle<()>) {
    let mut child = command.spawn().expect("spawn the child test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let report = words.iter().enumerate().find_map(|(i, word)| {
                let (_, step) = line.rsplit_once(&format!("{word} "))?;
                Some((i, step.trim().parse().expect("a step number")))
            });
            if let Some(report) = report
                && tx.send(report).is_err()
            {
                break;
            }
        }
    });
    (Reaper(child), rx, reader)
}

/// The step a child resumes at: the one after the checkpoint it restored,
/// whose state must be `expected(step)`; 0 on an empty store.
pub fn resume_step<S: PartialEq>(
    restored: Option<ckpt::Restored<S>>,
    expected: impl Fn(u64) -> S,
) -> u64 {
    match restored {
        Some(restored) => {
            assert!(restored.state == expected(restored.step), "child restore");
            restored.step + 1
        }
        None => 0,
    }
}
