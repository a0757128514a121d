//! The `updown serve` processes under test, and the nemesis that kills and
//! restarts them, crashes PostgreSQL and pauses it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::journal::Rng;
use super::process::updown as command;

/// Longest a serve may take to listen after PostgreSQL is back.
const START_WITHIN: Duration = Duration::from_secs(60);
/// How long PostgreSQL stays paused: longer than serve's 10 s request
/// timeout and its 10 s wait for a database connection.
const PAUSE: Duration = Duration::from_secs(12);
/// When the first pause of PostgreSQL comes, and the time from the end
/// of one to the next.
const FIRST_PAUSE: Duration = Duration::from_secs(10);
const PAUSE_EVERY: Duration = Duration::from_secs(18);

/// One `updown serve` on a fixed address, so that restarts keep it.
pub struct Serve {
    name: String,
    pub address: SocketAddr,
    env: Vec<(String, String)>,
    folder: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Serve {
    pub fn new(name: &str, folder: PathBuf, env: Vec<(String, String)>) -> Serve {
        let port = super::free_port();
        Serve {
            name: name.into(),
            address: ([127, 0, 0, 1], port).into(),
            env,
            folder,
            child: None,
            starts: 0,
        }
    }

    /// Starts it (again), each time with a log file of its own, until it
    /// listens: a start fails while PostgreSQL is down or recovering.
    pub fn start(&mut self) -> Result<(), String> {
        self.stop();
        let deadline = Instant::now() + START_WITHIN;
        loop {
            self.starts += 1;
            let log = self
                .folder
                .join(format!("{}-{}.log", self.name, self.starts));
            let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
            let child = command(&self.env)
                .env("BIND_ADDR", self.address.to_string())
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .map_err(|e| e.to_string())?;
            self.child = Some(child);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("listening on http://") {
                    return Ok(());
                }
                let exited = self
                    .child
                    .as_mut()
                    .map(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited == Some(true) || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.stop();
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "{} did not start within {START_WITHIN:?}: {text}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL, and reaped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sets one variable of its environment for the next start.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the nemesis did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub kills: u32,
    pub restarts: u32,
    pub postgres_crashes: u32,
    pub pauses: u32,
}

/// The nemesis, on a thread of its own (its steps block); dropping it
/// stops it, and it leaves PostgreSQL running (resumed) whatever happens.
pub struct Nemesis {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Faults, String>>>,
}

impl Nemesis {
    /// Every 2 to 5 s, SIGKILL one serve and restart it; every third
    /// kill, crash and restart PostgreSQL too. After `FIRST_PAUSE`, then
    /// `PAUSE_EVERY` after each, pause PostgreSQL for `PAUSE` if that
    /// ends before `until`.
    pub fn start(
        serves: Arc<Mutex<Vec<Serve>>>,
        cluster: Arc<Cluster>,
        seed: u64,
        until: Instant,
    ) -> Nemesis {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let mut faults = Faults::default();
            let mut next_pause = Instant::now() + FIRST_PAUSE;
            loop {
                let wait = Duration::from_millis(2000 + rng.below(3000));
                if !sleep_unless(&stopping, wait) {
                    return Ok(faults);
                }
                let now = Instant::now();
                if now >= next_pause && now + PAUSE <= until {
                    if cluster.pause() == 0 {
                        return Err("found no PostgreSQL process to pause".into());
                    }
                    faults.pauses += 1;
                    // Always resumed, even when asked to stop meanwhile.
                    sleep_unless(&stopping, PAUSE);
                    cluster.resume();
                    next_pause = Instant::now() + PAUSE_EVERY;
                    continue;
                }
                let mut serves = serves.lock().unwrap();
                let victim = rng.below(serves.len() as u64) as usize;
                serves[victim].stop();
                faults.kills += 1;
                if faults.kills % 3 == 0 {
                    if !cluster.crash() {
                        return Err("pg_ctl stop -m immediate failed".into());
                    }
                    faults.postgres_crashes += 1;
                    cluster.start_server();
                }
                serves[victim].start()?;
                faults.restarts += 1;
            }
        });
        Nemesis {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it after its current step; what it did.
    pub fn finish(mut self) -> Result<Faults, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the nemesis panicked".into()),
            None => Err("the nemesis was finished already".into()),
        }
    }
}

impl Drop for Nemesis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sleeps `duration` unless `stop` is set meanwhile; whether it slept
/// all of it.
fn sleep_unless(stop: &AtomicBool, duration: Duration) -> bool {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The serves' logs: removed after a pass, kept (and named) after a
/// failure.
pub struct Logs(pub PathBuf);

impl Logs {
    pub fn new() -> Logs {
        let folder = std::env::temp_dir().join(format!("updown-bank-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        Logs(folder)
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the serves' logs are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
