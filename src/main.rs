use std::process::ExitCode;

use hookgate::cli::{Cli, Command, PluginCommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (not exported by libmimalloc-sys; the
/// test below checks the index still names it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the gateway's memory near what it uses (BENCHMARKS.md, backlog
/// memory: peak 367 -> 216 MiB over a 300,000-delivery backlog, same drain
/// rate):
/// - mimalloc v3 keeps freed pages for `purge_delay` ms (1,000 by default)
///   before giving them back, which through a backlog's churn held ~80 MiB;
///   they go back at once unless the operator set `MIMALLOC_PURGE_DELAY`;
/// - mimalloc asks for transparent huge pages on its regions, so a partly
///   used region stays resident in 2 MiB pieces; THP is off for the process
///   (what `MIMALLOC_ALLOW_THP=0` does), unless that variable is set.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a prctl on this process with integer arguments. A kernel
        // without it leaves THP on, which only costs memory.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse_args();
    match cli.command {
        Command::Serve(args) => {
            let config = match args.resolve() {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("hookgate: {e}");
                    return ExitCode::from(2);
                }
            };
            hookgate::logging::init(config.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("hookgate: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(hookgate::server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("hookgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Plugin(PluginCommand::New(args)) => {
            match hookgate::plugin_new::write(args.lang, &args.name, args.dir.as_deref()) {
                Ok((dir, files)) => {
                    println!("wrote {}:", dir.display());
                    for file in files {
                        println!("  {file}");
                    }
                    println!(
                        "next, in {}:\n  {}",
                        dir.display(),
                        hookgate::plugin_new::next_step(args.lang, &args.name)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hookgate: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Plugin(PluginCommand::CompileWorker) => hookgate::plugins::compile::worker_main(),
        Command::Plugin(PluginCommand::Run(args)) => match hookgate::plugins::offline::run(&args) {
            Ok((report, failed)) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
                if failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("hookgate: {e}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets plain integer options.
        unsafe {
            // 1000 is purge_delay's default in mimalloc v3 (options.c); the
            // options next to it default to other values.
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 0);
        }
    }
}
