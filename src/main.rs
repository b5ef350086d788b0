//! The `xbar` command: device catalogue and characterisation, circuit tools, experiments.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: i32 = 130;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // On Ctrl-C, say what is saved and how to resume; every result file is written
    // atomically, so what is on disk is consistent whenever the process stops.
    let _ = ctrlc::set_handler(|| {
        match xbar::experiment::run::interrupt_message() {
            Some(message) => eprintln!("\n{message}"),
            None => eprintln!("\ninterrupted"),
        }
        std::process::exit(INTERRUPTED);
    });
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
