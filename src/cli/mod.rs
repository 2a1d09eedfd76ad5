//! Command-line interface: argument parsing and exit codes.

pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
