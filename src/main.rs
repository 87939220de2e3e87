//! `hostlab`: the one binary. It parses the command line and hands each
//! subcommand to the crate or module that does the work; child processes of
//! the hosting models are this same executable started with `serve`.

use hostlab::{cli, journal, load, run};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A worker of `serve inprocess` inherits its listening socket as fd 3;
    // take it before anything starts a thread (listenfd edits the environment).
    let inherited = match hostlab_hosts::take_inherited_listener() {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hostlab: error: the inherited listening socket (fd 3) is unusable: {e}");
            return ExitCode::from(1);
        }
    };
    let cli = cli::Cli::parse();
    init_logging();
    let result = match cli.command {
        cli::Command::Serve(args) => match (*args).into_options(inherited) {
            Ok(options) => hostlab_hosts::serve(options).map_err(Into::into),
            // An unusable policy file or flag value is a bad argument: exit 2.
            Err(e) => {
                eprintln!("hostlab: error: {e:#}");
                return ExitCode::from(2);
            }
        },
        cli::Command::Load(args) => load::main(args),
        // A plan that cannot be made is a bad argument: exit 2.
        cli::Command::Run(args) => match run::plan::RunPlan::from_args(args) {
            Ok(plan) => run::execute(plan),
            Err(e) => return bad_arguments(&e),
        },
        cli::Command::Recycle(args) => {
            let grade = args.grade;
            match run::recycle_plan(args) {
                Ok(plan) => {
                    let (out, kind) = (plan.out.clone(), plan.recycle_kinds.join(","));
                    run::execute(plan).and_then(|()| if grade { run::grade::print(&out, &kind) } else { Ok(()) })
                }
                Err(e) => return bad_arguments(&e),
            }
        }
        cli::Command::Report(args) => run::report_main(&args.dir),
        cli::Command::Compare(args) => run::compare_main(&args.a, &args.b),
        cli::Command::Journal(command) => journal::main(command),
        cli::Command::LinkSink { listen } => run::link_sink(listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostlab: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn bad_arguments(e: &anyhow::Error) -> ExitCode {
    eprintln!("hostlab: error: {e:#}");
    ExitCode::from(2)
}

/// Logs go to stderr (stdout carries the ready line and results).
/// `RUST_LOG` overrides the default of lifecycle messages only.
fn init_logging() {
    // actix_http logs every malformed request at error level: a hostile
    // client must not be able to flood the log (docs/security.md).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "warn,ractor_cluster=error,actix_http=off,hostlab=info,hostlab_hosts=info,hostlab_workloads=info".into()
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
