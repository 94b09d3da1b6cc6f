//! S3 gateway processes of a test's own onto the running store's filer
//! (`weed s3 -filer=…`; `scripts/s3-server` exports where `weed` and the
//! filer are). Killing or stopping one is a real server failure that
//! leaves the store up — unlike the gateway inside `weed server -s3`.

use std::io::{self, Write};
use std::process::{Child, Command, Stdio};

/// One `weed s3` gateway process, bound to 127.0.0.1 on free ports, killed
/// (and reaped) when dropped.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Gateway {
    /// Starts one, or `None` (after saying why) when the server's script did
    /// not say where `weed` and the filer are. With `CKPT_S3_REQUIRED` set
    /// (CI), a missing variable fails the test instead.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Starts one with extra `weed s3` arguments.
    pub fn start_with(extra: &[String]) -> Option<Self> {
        let (Ok(weed), Ok(filer)) = (
            std::env::var("CKPT_S3_WEED"),
            std::env::var("CKPT_S3_FILER"),
        ) else {
            assert!(
                std::env::var_os("CKPT_S3_REQUIRED").is_none(),
                "CKPT_S3_REQUIRED is set but CKPT_S3_WEED/CKPT_S3_FILER are not: \
                 start the server with scripts/s3-server"
            );
            let _ = writeln!(
                io::stderr(),
                "skipped: CKPT_S3_WEED/CKPT_S3_FILER unset; start the server with scripts/s3-server"
            );
            return None;
        };
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port on 127.0.0.1")
        };
        let (port, grpc) = (free_port(), free_port());
        let child = Command::new(weed)
            .args([
                "-logtostderr",
                "s3",
                "-ip.bind=127.0.0.1",
                "-port.iceberg=0",
                "-port.lance=0",
            ])
            .arg(format!("-filer={filer}"))
            .arg(format!("-port={port}"))
            .arg(format!("-port.grpc={grpc}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("CKPT_S3_WEED runs");
        Some(Gateway {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap: the process is gone when this returns.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the process hangs, its sockets stay open and accept
    /// connections that nobody answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT: a paused process runs on.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on our own, not yet reaped, child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            io::Error::last_os_error()
        );
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}
