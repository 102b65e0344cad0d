//! The one gateway launcher: starts a `hookgate serve` binary as its own
//! process on a loopback port and a data dir, waits until it listens, and
//! reads its CPU time and memory from /proc. The integration tests, the
//! bench harness and its tests all start the gateway through it.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How to start (and restart) a gateway.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `hookgate` binary (tests: `env!("CARGO_BIN_EXE_hookgate")`).
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    /// The loopback port, or 0 for one the kernel picks.
    pub port: u16,
    /// `HOOKGATE_ADMIN_TOKEN`; without it the gateway generates one and
    /// prints it before it listens ([`Process::printed`]).
    pub admin_token: Option<String>,
    /// `RUST_LOG` of the gateway.
    pub log: String,
    /// Settings and other variables; nothing else of the caller's
    /// environment reaches the gateway but `PATH`, unless `pass_settings`.
    pub env: Vec<(String, String)>,
    /// Pass the caller's own `HOOKGATE_*` and `MIMALLOC_*` variables on
    /// (under `env`), for an operator tuning a benchmark run.
    pub pass_settings: bool,
    /// The PostgreSQL database the gateway keeps its store in
    /// (`HOOKGATE_DATABASE_URL`), or `None` for sled in `data_dir`; by
    /// default what the tests' backend switch says ([`crate::database`]).
    pub database_url: Option<String>,
    /// A command the gateway runs under (a profiler, e.g. `perf record -g
    /// -o gw.data`); it is sent SIGINT first when the process is dropped,
    /// so it can write its data.
    pub wrap: Option<String>,
}

impl Launch {
    pub fn new(binary: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            binary: binary.into(),
            database_url: crate::database::for_data_dir(&data_dir),
            data_dir,
            port: 0,
            admin_token: None,
            log: "warn".into(),
            env: Vec::new(),
            pass_settings: false,
            wrap: None,
        }
    }

    /// Starts the gateway and waits up to 60 s until it listens.
    pub fn start(&self) -> Process {
        let wrap = self.wrap.as_deref().unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut cmd = Command::new(program);
                cmd.args(words).arg(&self.binary);
                cmd
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOOKGATE_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("HOOKGATE_DATA_DIR", &self.data_dir)
            .env("RUST_LOG", &self.log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so a wrapper and the gateway under it
            // are signalled together; out of the terminal's group, so the
            // kernel kills it if the caller dies (Ctrl-C) instead.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork
        // and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if let Some(token) = &self.admin_token {
            cmd.env("HOOKGATE_ADMIN_TOKEN", token);
        }
        if let Some(url) = &self.database_url {
            // A gateway killed by a test hands its work over within
            // seconds, not the default half minute.
            cmd.env("HOOKGATE_DATABASE_URL", url)
                .env("HOOKGATE_QUEUE_LEASE", "2s");
        }
        if self.pass_settings {
            for (k, v) in std::env::vars() {
                if (k.starts_with("HOOKGATE_") || k.starts_with("MIMALLOC_"))
                    && k != "HOOKGATE_BENCH_WRAP"
                {
                    cmd.env(k, v);
                }
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the address arrived, or the pipe fills.
                let _ = tx.send(line);
            }
        });
        let mut printed = Vec::new();
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("hookgate did not start; stdout so far: {printed:?}"));
            if let Some(addr) = line.strip_prefix("hookgate listening on ") {
                break addr.to_string();
            }
            printed.push(line);
        };
        Process {
            child,
            base,
            printed,
            wrapped: !wrap.trim().is_empty(),
        }
    }
}

/// CPU seconds and peak RSS of one gateway process.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

/// A running gateway; killed (with its wrapper) when dropped.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What the gateway printed before it listened (a generated token).
    pub printed: Vec<String>,
    wrapped: bool,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the gateway and, if any, its wrapper.
    fn signal(&self, signal: libc::c_int) {
        // The child leads its own group (process_group(0)): -pid is it.
        // SAFETY: kill(2) with a pid and a signal number.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), signal) };
    }

    /// CPU time and peak RSS so far.
    pub fn usage(&self) -> Usage {
        usage_of(self.pid())
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let status = proc_status(self.pid());
        (
            kib(&status, "VmRSS:").expect("VmRSS in /proc status") << 10,
            kib(&status, "VmHWM:").expect("VmHWM in /proc status") << 10,
        )
    }

    /// SIGKILL: no drain, no flush. Returns the usage just before.
    pub fn kill(&mut self) -> Usage {
        let usage = self.usage();
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        usage
    }

    /// SIGTERM (graceful shutdown), waiting up to `limit` for the process
    /// to end by itself: how long it took, or `None` if it still runs (it is
    /// killed when dropped).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        self.signal(libc::SIGTERM);
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then SIGKILL if it has not ended within 5 s.
    pub fn stop(&mut self) {
        if self.terminate_within(Duration::from_secs(5)).is_none() {
            self.kill();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if self.wrapped {
            // A profiler writes its data on SIGINT; the gateway shuts down
            // gracefully on it. Killed anyway after 60 s.
            self.signal(libc::SIGINT);
            for _ in 0..600 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn proc_status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

/// A `kB` field of /proc/PID/status.
fn kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime and VmHWM of `pid`.
pub fn usage_of(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    // SAFETY: sysconf with a valid name.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Usage {
        cpu_seconds: ticks / per_second,
        peak_rss_mib: kib(&proc_status(pid), "VmHWM:").unwrap_or(0) as f64 / 1024.0,
    }
}

/// Current RSS of `pid` in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    kib(&proc_status(pid), "VmRSS:").unwrap_or(0) as f64 / 1024.0
}

/// A free loopback port, so a restarted gateway comes back at the same URL.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
