//! A real static HTTP server for tests: Python's `http.server` on
//! 127.0.0.1 and a port the kernel chooses, serving one directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct HttpServer {
    child: Option<Child>,
    pub port: u16,
}

impl HttpServer {
    /// Serves `dir` (files are read on every request: replace them
    /// atomically). Panics if python3 is missing or the server does not
    /// say where it listens within 20 s.
    pub fn start(dir: &Path) -> HttpServer {
        let python = crate::require_tool("python3", "python3");
        let mut child = Command::new(python)
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning python3 -m http.server");
        let stdout = child.stdout.take().expect("stdout");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let line = rx
            .recv_timeout(deadline - Instant::now())
            .expect("python3 -m http.server did not start in 20 s");
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner: {line}"));
        HttpServer {
            child: Some(child),
            port,
        }
    }

    /// `http://127.0.0.1:PORT/<path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Stops the server (its port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
