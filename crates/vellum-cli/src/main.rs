//! The `vellum` command. All logic lives in the library; this only maps its result to an exit
//! code.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    vellum_cli::main_with_args(std::env::args_os())
}
