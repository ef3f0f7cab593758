//! `waflog`: generate, transform and (soon) detect anomalies in AWS WAF logs.
//!
//! This binary is flags plus glue: it parses arguments, builds the pieces from
//! `waflog-core`, runs them and maps the outcome to an exit code:
//!
//! - 0: finished (bad records dead-lettered and counted), or stdout or stderr
//!   was closed;
//! - 1: finished, but `--strict` was given and something was dead-lettered;
//! - 2: usage, configuration or I/O error (a failed write, a file over its cap);
//! - 3: finished, but alert notifications are still undelivered.

mod alerts;
mod aws;
mod cli;
mod cmd;
mod exit;
mod files;
mod interrupt;
mod location;
mod logging;
mod net;
mod progress;
mod records;
mod sink;
mod source;
mod term;
mod threads;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.global.verbose, cli.global.quiet);
    let outcome = match &cli.command {
        cli::Command::Generate(args) => cmd::generate::run(&cli.global, args),
        cli::Command::Transform(args) => cmd::transform::run(&cli.global, args),
        cli::Command::Detect(args) => cmd::detect::run(&cli.global, args),
        cli::Command::Eval(args) => cmd::eval::run(&cli.global, args),
        cli::Command::Alerts(args) => cmd::alerts::run(&cli.global, args),
        cli::Command::Report(args) => cmd::report::run(&cli.global, args),
        cli::Command::Opensearch(args) => cmd::opensearch::run(&cli.global, args),
    };
    exit::code(outcome)
}
