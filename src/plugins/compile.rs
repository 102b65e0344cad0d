//! Compiling uploaded components, bounded in time and memory.
//!
//! Compiling untrusted wasm has no bound of its own: a component of under a
//! megabyte (one function, thousands of locals, tens of thousands of
//! branches) can keep Cranelift busy for minutes and take gigabytes. So the
//! gateway compiles in a child process of its own binary
//! (`hookgate plugin compile-worker`: component bytes on stdin, serialised
//! machine code on stdout) under `RLIMIT_DATA` and `RLIMIT_CPU`, with a
//! wall-clock limit on top, a few at a time. A bomb then costs at most its
//! bounds and a 422; the gateway's own memory never sees it. The child only
//! compiles: the gateway loads the result, which also checks the
//! component's shape against the sandbox's bounds and the world.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::error::PluginError;
use super::host::compile_artifact;

/// Compiles that may run at once.
const COMPILE_SLOTS: usize = 2;
/// The child's exit code for a component that does not compile; its
/// message is on stderr.
const INVALID: u8 = 3;
/// Longest compiler message kept.
const MAX_MESSAGE: usize = 2048;

/// The bounds of one compile.
#[derive(Debug, Clone, Copy)]
pub struct CompileLimits {
    /// Private writable memory of the compiler process.
    pub memory: usize,
    /// CPU time of the compiler process, all its threads together.
    pub cpu: Duration,
}

impl CompileLimits {
    /// The bounds without settings (the operator's settings take their
    /// defaults from here).
    pub const DEFAULT: Self = Self {
        // A Python component (~18 MB, an interpreter inside) takes about
        // 10 s of CPU and over 512 MiB of heap at its peak on a 2-core
        // machine.
        memory: 1024 << 20,
        cpu: Duration::from_secs(60),
    };
}

impl Default for CompileLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

enum Mode {
    /// A child process of this program, run with `plugin compile-worker`.
    Process(PathBuf),
    /// On a blocking thread of this process, unbounded: for tools and tests
    /// that compile only components they trust.
    InProcess,
}

/// Runs compiles, a few at a time.
pub struct Compiler {
    mode: Mode,
    limits: CompileLimits,
    slots: Semaphore,
}

impl Compiler {
    /// Compiles in child processes running `program` (the gateway's own
    /// binary).
    pub fn process(program: PathBuf, limits: CompileLimits) -> Self {
        Self {
            mode: Mode::Process(program),
            limits,
            slots: Semaphore::new(COMPILE_SLOTS),
        }
    }

    /// Compiles in this process, without bounds.
    pub fn in_process() -> Self {
        Self {
            mode: Mode::InProcess,
            limits: CompileLimits::default(),
            slots: Semaphore::new(COMPILE_SLOTS),
        }
    }

    /// The bounds of each compile.
    pub fn limits(&self) -> CompileLimits {
        self.limits
    }

    /// Compiles `wasm` to serialised machine code.
    pub async fn compile(&self, wasm: bytes::Bytes) -> Result<Vec<u8>, PluginError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the compile slots are never closed");
        match &self.mode {
            Mode::InProcess => tokio::task::spawn_blocking(move || compile_artifact(&wasm))
                .await
                .map_err(|e| PluginError::Host(e.to_string()))?,
            Mode::Process(program) => self.in_child(program, &wasm).await,
        }
    }

    async fn in_child(&self, program: &PathBuf, wasm: &[u8]) -> Result<Vec<u8>, PluginError> {
        let limits = self.limits;
        let mut command = tokio::process::Command::new(program);
        command
            .args(["plugin", "compile-worker"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls (setrlimit) between fork and
        // exec.
        unsafe {
            command.pre_exec(move || set_limits(limits));
        }
        let host = |e: std::io::Error| PluginError::Host(format!("cannot run the compiler: {e}"));
        let mut child = command.spawn().map_err(host)?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = wasm.to_vec();
        // Fed from a task of its own: the child may stop reading (killed by
        // a bound) while its output is read here.
        let feeder = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
        // The CPU bound is the real one; the wall-clock limit catches a
        // child that waits rather than computes.
        let wall = limits.cpu * 3 + Duration::from_secs(5);
        let output = match tokio::time::timeout(wall, child.wait_with_output()).await {
            Ok(output) => output.map_err(host)?,
            Err(_) => {
                return Err(PluginError::Bound(format!(
                    "compiling it took longer than {wall:?}"
                )));
            }
        };
        feeder.abort();
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = super::output::bounded(stderr.trim(), MAX_MESSAGE);
        if output.status.code() == Some(i32::from(INVALID)) {
            return Err(PluginError::NotAComponent(message));
        }
        Err(self.describe_kill(&output.status, &stderr, message))
    }

    /// Why a compiler process ended without a result: a bound it hit, or
    /// (unexpectedly) something else.
    fn describe_kill(
        &self,
        status: &std::process::ExitStatus,
        stderr: &str,
        message: String,
    ) -> PluginError {
        use std::os::unix::process::ExitStatusExt;
        let signal = status.signal();
        let memory_mib = self.limits.memory >> 20;
        let out_of_memory = stderr.contains("memory allocation")
            || stderr.contains("out of memory")
            || stderr.contains("Cannot allocate memory");
        if signal == Some(libc::SIGXCPU) || signal == Some(libc::SIGKILL) && !out_of_memory {
            return PluginError::Bound(format!(
                "compiling it exceeded its CPU bound of {:?}",
                self.limits.cpu
            ));
        }
        if out_of_memory || signal == Some(libc::SIGABRT) || signal == Some(libc::SIGSEGV) {
            return PluginError::Bound(format!(
                "compiling it exceeded its memory bound of {memory_mib} MiB"
            ));
        }
        PluginError::Host(format!("the compiler ended with {status}: {message}"))
    }
}

/// Applies `limits` to the calling process (the child, before exec).
fn set_limits(limits: CompileLimits) -> std::io::Result<()> {
    let set = |resource, soft: u64, hard: u64| {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit with a valid pointer to a local struct.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    let cpu = limits.cpu.as_secs().max(1);
    // SIGXCPU at the soft limit; SIGKILL a second later if it is ignored.
    set(libc::RLIMIT_CPU, cpu, cpu + 1)?;
    // Private writable memory (heap and anonymous maps), not address space:
    // the binary's own mapping and reserved but untouched ranges do not count.
    let memory = limits.memory as u64;
    set(libc::RLIMIT_DATA, memory, memory)?;
    // A crash dump of a bomb would cost more than the bomb.
    set(libc::RLIMIT_CORE, 0, 0)
}

/// `hookgate plugin compile-worker`: reads a component on stdin and writes
/// its machine code on stdout; exits [`INVALID`] with the reason on stderr
/// when it does not compile.
pub fn worker_main() -> ExitCode {
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("cannot read the component: {e}");
        return ExitCode::FAILURE;
    }
    match compile_artifact(&wasm) {
        Ok(artifact) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(&artifact)
                .and_then(|_| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(PluginError::NotAComponent(message)) => {
            eprintln!("{message}");
            ExitCode::from(INVALID)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
