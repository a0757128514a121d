//! Real `updown` processes for the tests that start them: the command
//! with only the environment given, and `serve` with its log in a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The admin token the started processes use.
pub const ADMIN: &str = "admin-token-for-instances-0123";

/// What a started process inherits: the search path, and where a
/// coverage run (`cargo tarpaulin --engine llvm`) wants its profile, so
/// what child processes run is counted too.
const INHERITED: [&str; 2] = ["PATH", "LLVM_PROFILE_FILE"];

/// `updown` with only the given environment (nothing inherited but
/// [`INHERITED`]).
pub fn updown<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(env: &[(K, V)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_updown"));
    command.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

pub struct Serve {
    pub child: Child,
    pub address: std::net::SocketAddr,
    log: PathBuf,
}

impl Serve {
    /// Starts `updown serve` with JSON logs into a file; returns once it
    /// listens.
    pub fn start(folder: &Path, name: &str, env: &[(&str, &str)]) -> Serve {
        let log = folder.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut all = vec![
            ("BIND_ADDR", "127.0.0.1:0"),
            ("ADMIN_TOKEN", ADMIN),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
            ("SCHEDULER_TICK_SECS", "1"),
            ("RATE_LIMIT_IP", "off"),
            ("RATE_LIMIT_KEY", "off"),
            ("RATE_LIMIT_SIGN_IN", "off"),
        ];
        all.extend_from_slice(env);
        let child = updown(&all)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(file.try_clone().unwrap())
            .spawn()
            .unwrap();
        // Owned at once, so a failed start still kills and reaps it.
        let mut serve = Serve {
            child,
            address: ([127, 0, 0, 1], 0).into(),
            log,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = serve.log();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                serve.address = rest.split_whitespace().next().unwrap().parse().unwrap();
                return serve;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines telling that this instance settled `round`.
    pub fn settled(&self, round: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"round_settled\"") && l.contains(round))
            .count()
    }

    /// Waits for this serve to die by SIGKILL at its `UPDOWN_TEST_CRASH`
    /// point.
    pub fn wait_killed(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert_eq!(status.signal(), Some(9), "{status:?}: {}", self.log());
                assert!(self.log().contains("UPDOWN_TEST_CRASH"));
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not killed: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
