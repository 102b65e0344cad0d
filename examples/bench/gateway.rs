//! The gateway under test: the release binary as its own process, on a fixed
//! loopback port and a fresh data dir, so it can be SIGKILLed and restarted
//! on the same state.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// Builds `target/release/hookgate` (a no-op when it is up to date) and
/// returns its path.
pub fn build_release_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Built together with this example so dependency features resolve as
    // they did for `cargo run --example bench`; the binary alone would
    // resolve them without dev-dependencies and rebuild half the tree.
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "hookgate",
            "--example",
            "bench",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build for the gateway");
    assert!(status.success(), "building the gateway failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release").join("hookgate")
}

/// How to start (and restart) the gateway.
pub struct Launch {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub port: u16,
    pub env: Vec<(String, String)>,
}

/// CPU seconds and peak RSS of one gateway process.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

pub struct Gateway {
    child: Child,
    pub base: String,
    /// Started under `HOOKGATE_BENCH_WRAP`.
    wrapped: bool,
}

impl Gateway {
    pub fn start(launch: &Launch) -> Gateway {
        // HOOKGATE_BENCH_WRAP runs the gateway under a profiler, e.g.
        // "heaptrack -o /tmp/gw" (the figures are then the wrapper's).
        let wrap = std::env::var("HOOKGATE_BENCH_WRAP").unwrap_or_default();
        let wrapped = !wrap.trim().is_empty();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut cmd = Command::new(program);
                cmd.args(words).arg(&launch.binary);
                cmd
            }
            None => Command::new(&launch.binary),
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOOKGATE_LISTEN", format!("127.0.0.1:{}", launch.port))
            .env("HOOKGATE_DATA_DIR", &launch.data_dir)
            .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so a wrapper and the gateway under it
            // are signalled together; out of the terminal's group, so the
            // kernel kills it if the harness dies (Ctrl-C) instead.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork
        // and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // The operator's own settings (e.g. HOOKGATE_STORE_CACHE_MIB) reach
        // the gateway; the harness's own below take precedence.
        for (k, v) in std::env::vars() {
            if (k.starts_with("HOOKGATE_") || k.starts_with("MIMALLOC_"))
                && k != "HOOKGATE_BENCH_WRAP"
            {
                cmd.env(k, v);
            }
        }
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn hookgate");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the address arrived, or the pipe fills.
                let _ = tx.send(line);
            }
        });
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("hookgate did not start within 60 s");
            if let Some(addr) = line.strip_prefix("hookgate listening on ") {
                break addr.to_string();
            }
        };
        Gateway {
            child,
            base,
            wrapped,
        }
    }

    /// Sends `signal` to the gateway and, if any, its wrapper.
    fn signal(&self, signal: libc::c_int) {
        // The child leads its own group (process_group(0)): -pid is it.
        // SAFETY: kill(2) with a pid and a signal number.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), signal) };
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time and peak RSS so far, from /proc.
    pub fn usage(&self) -> Usage {
        usage_of(self.pid())
    }

    /// SIGKILL: no drain, no flush. Returns the usage just before.
    pub fn kill(mut self) -> Usage {
        let usage = self.usage();
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        usage
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.wrapped {
            // A profiler writes its data on SIGINT; the gateway shuts down
            // gracefully on it. Killed anyway after 60 s.
            self.signal(libc::SIGINT);
            for _ in 0..600 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Reads utime+stime and VmHWM of `pid`.
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Usage {
        cpu_seconds: ticks / clock_ticks_per_second(),
        peak_rss_mib: hwm_kib / 1024.0,
    }
}

/// Current RSS of `pid` in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A free loopback port, so a restarted gateway comes back at the same URL.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
