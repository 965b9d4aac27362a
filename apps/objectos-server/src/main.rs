//! The `objectos` binary: everything lives in `objectos_server::main_entry`.

fn main() -> std::process::ExitCode {
    objectos_server::main_entry()
}
