//! Drives an interactive program (MIT ktutil) through `script`'s
//! pseudo-terminal: ktutil refuses key prompts on a pipe.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub struct Pty {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Vec<u8>>,
    transcript: Vec<u8>,
    mark: usize,
}

impl Pty {
    /// Starts `program` under `script -qfec`; `setup` adds environment.
    pub fn spawn(program: &Path, setup: impl FnOnce(&mut Command)) -> Pty {
        let script = crate::require_tool("script", "bsdutils");
        let mut cmd = Command::new(script);
        cmd.arg("-qfec")
            .arg(program)
            .arg("/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("spawn script");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty {
            child,
            stdin,
            rx,
            transcript: Vec::new(),
            mark: 0,
        }
    }

    /// Waits (30 s at most) until `pat` appears in the output since the last `send`.
    pub fn expect(&mut self, pat: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = String::from_utf8_lossy(&self.transcript[self.mark..]);
            if let Some(i) = seen.find(pat) {
                self.mark += i + pat.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.transcript.extend(chunk),
                Err(e) => {
                    let _ = self.child.kill();
                    panic!(
                        "waiting for {pat:?}: {e}; transcript:\n{}",
                        String::from_utf8_lossy(&self.transcript)
                    );
                }
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        self.mark = self.transcript.len();
        self.stdin.write_all(line.as_bytes()).expect("pty write");
        self.stdin.write_all(b"\n").expect("pty write");
        self.stdin.flush().expect("pty flush");
    }

    /// Closes input and waits (30 s at most) for a successful exit.
    pub fn finish(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(chunk) = self.rx.try_recv() {
                    self.transcript.extend(chunk);
                }
                assert!(
                    status.success(),
                    "program exited with {status}; transcript:\n{}",
                    String::from_utf8_lossy(&self.transcript)
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "program did not exit; transcript:\n{}",
                    String::from_utf8_lossy(&self.transcript)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
