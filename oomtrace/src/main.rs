use clap::Parser as _;
use oomtrace::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    // Two malloc arenas at most: the start-up threads that parse BTF would otherwise each keep an
    // arena of freed memory (RSS), and one arena would make them contend (start-up time). The
    // daemon runs on one thread afterwards.
    // SAFETY: mallopt only tunes glibc's allocator, before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    let cli = Cli::parse();
    let level = init_logging(cli.log_level);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        match &cli.command {
            Command::Run(args) => oomtrace::daemon::run(args, level).await.map(|()| true),
            Command::Trace(args) => oomtrace::daemon::trace(args, level).await,
            Command::Check(args) => oomtrace::check::run(args),
            Command::Cleanup(args) => oomtrace::pin::cleanup(&args.pin_dir, args.force)
                .map(|n| {
                    println!("removed {n} pin set(s) from {}", args.pin_dir.display());
                    true
                })
                .map_err(anyhow::Error::from),
        }
    });
    match res {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        // Bad settings: one line, exit 2 (as clap does for bad flags), nothing attached.
        Err(e) if e.downcast_ref::<oomtrace::config::ConfigError>().is_some() => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--log-level` wins over `$RUST_LOG`; default info. Returns the level for the eBPF side.
fn init_logging(flag: Option<log::LevelFilter>) -> log::LevelFilter {
    let mut b = env_logger::Builder::new();
    b.target(env_logger::Target::Stderr)
        .format_timestamp_micros();
    let level = if let Some(l) = flag {
        b.filter_level(l);
        l
    } else if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
        // The most verbose level the spec enables, from a builder of its own (building consumes it).
        env_logger::Builder::new()
            .parse_filters(&spec)
            .build()
            .filter()
    } else {
        b.filter_level(log::LevelFilter::Info);
        log::LevelFilter::Info
    };
    // aya's own loader chatter is only interesting at trace level.
    let aya_level = if level == log::LevelFilter::Trace {
        level
    } else {
        level.min(log::LevelFilter::Warn)
    };
    for noisy in ["aya", "aya_obj"] {
        b.filter_module(noisy, aya_level);
    }
    b.init();
    level
}
