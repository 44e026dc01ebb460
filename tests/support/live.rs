//! `pushpull live` started on a free port for a test, and killed when the
//! test ends however it ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

pub struct Live {
    child: Child,
    pub port: u16,
    /// Kept open: the server's stdout stays writable.
    _stdout: BufReader<ChildStdout>,
}

impl Live {
    /// Starts the server with `--set` overrides `sets`.
    pub fn start_with(sets: &[&str]) -> Live {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pushpull"));
        command.args(["live", "--port", "0"]);
        for set in sets {
            command.args(["--set", set]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("pushpull starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a first line");
        // pushpull live: http://127.0.0.1:PORT/ (WebSocket: ...)
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Live {
            child,
            port,
            _stdout: stdout,
        }
    }

    pub fn start() -> Live {
        Live::start_with(&[])
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
