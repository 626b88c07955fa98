use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match wgfleet::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; everything else is exit code 1, because 2
            // means "changes pending" in the exit code contract.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    match wgfleet::commands::run(cli, &mut stdout, &mut stderr) {
        Ok(code) => ExitCode::from(code),
        // A closed stdout (`wgfleet render | head`) ends quietly with 0, as ripgrep does: the
        // reader has all it wanted, and an error there would only make the pipeline fail.
        Err(e) if e.is_closed_output() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgfleet: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
