//! A scratch PostgreSQL cluster of the bank test's own: initdb into a
//! fresh folder, a free port on 127.0.0.1, its socket in that folder. The
//! test kills, restarts and pauses it, which it must never do to the
//! shared server; dropping it always stops it and removes the folder.

#![allow(dead_code)] // Each test binary that includes it uses a part.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server's user when the test runs as root (initdb and postgres
/// refuse to run as root).
const SERVER_USER: &str = "postgres";

pub struct Cluster {
    bin: PathBuf,
    folder: PathBuf,
    port: u16,
    /// Run the server's programs as `SERVER_USER` (the test runs as root).
    as_server_user: bool,
}

impl Cluster {
    /// Creates and starts a cluster: trust authentication, superuser
    /// `postgres`, about 100 connections, no fsync (the faults are process
    /// crashes, which the operating system's page cache survives).
    pub fn start(name: &str) -> Cluster {
        let bin = server_binaries();
        let folder = std::env::temp_dir().join(format!("updown-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        let as_server_user = running_as_root();
        // Owned at once: a failure below still removes the folder.
        let cluster = Cluster {
            bin,
            folder,
            port: free_port(),
            as_server_user,
        };
        cluster.give_folder_to_server_user();
        let data = cluster.data().display().to_string();
        run(cluster.program("initdb").args([
            "-D",
            &data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]));
        cluster.start_server();
        cluster
    }

    /// A streaming replica of this cluster (`pg_basebackup -R`), started
    /// on a port of its own.
    pub fn replica(&self, name: &str) -> Cluster {
        let folder = std::env::temp_dir().join(format!("updown-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        let replica = Cluster {
            bin: self.bin.clone(),
            folder,
            port: free_port(),
            as_server_user: self.as_server_user,
        };
        replica.give_folder_to_server_user();
        let data = replica.data().display().to_string();
        run(replica.program("pg_basebackup").args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-D",
            &data,
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
        ]));
        replica.start_server();
        replica
    }

    /// The server's user owns the folder (when the test runs as root).
    fn give_folder_to_server_user(&self) {
        if self.as_server_user {
            run(Command::new("chown").args([
                "-R",
                &format!("{SERVER_USER}:{SERVER_USER}"),
                &self.folder.display().to_string(),
            ]));
        }
    }

    /// `postgres://` for the superuser, over TCP.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off",
            self.port,
            self.folder.display()
        );
        let log = self.folder.join("postgres.log").display().to_string();
        let data = self.data().display().to_string();
        let status = self
            .program("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D", &data, "-l", &log, "-o"])
            .arg(options)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "PostgreSQL did not start: {}",
            self.log_tail()
        );
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once, as
    /// in a crash; the next start recovers from the WAL. Whether it was
    /// running and stopped.
    pub fn crash(&self) -> bool {
        self.resume();
        let data = self.data().display().to_string();
        self.program("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D", &data])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGSTOP to the postmaster and every child of it: connections stay
    /// open and nothing answers. Returns how many processes were stopped.
    pub fn pause(&self) -> usize {
        let processes = self.processes();
        signal("-STOP", &processes);
        processes.len()
    }

    /// SIGCONT to the postmaster and its children.
    pub fn resume(&self) {
        signal("-CONT", &self.processes());
    }

    fn data(&self) -> PathBuf {
        self.folder.join("data")
    }

    /// The postmaster (first line of `postmaster.pid`, checked to be this
    /// cluster's by its command line) and its children; none when it is
    /// not running. Never a process of another server.
    fn processes(&self) -> Vec<u32> {
        let Ok(text) = std::fs::read_to_string(self.data().join("postmaster.pid")) else {
            return Vec::new();
        };
        let Some(postmaster) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            return Vec::new();
        };
        let command_line = std::fs::read(format!("/proc/{postmaster}/cmdline")).unwrap_or_default();
        let data = self.data().display().to_string();
        if !String::from_utf8_lossy(&command_line).contains(&data) {
            return Vec::new();
        }
        let children = Command::new("pgrep")
            .args(["-P", &postmaster.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut all = vec![postmaster];
        all.extend(
            children
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
        all
    }

    /// A program of the server's, as its user when the test runs as root.
    fn program(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_server_user {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_USER, "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.folder.join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A paused server cannot stop: wake it first.
        self.crash();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A port free now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `initdb`, `pg_ctl` and `postgres` of the highest installed version.
fn server_binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL's server binaries in /usr/lib/postgresql/<version>/bin")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn signal(signal: &str, processes: &[u32]) {
    if processes.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(signal)
        .args(processes.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}
