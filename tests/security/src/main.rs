//! `objectos-under-test`: the `objectos` binary built inside the security suite's package, so its
//! tests can start the real server as a child process (a package's tests only get
//! `CARGO_BIN_EXE_*` for its own binaries). Same entry point as `apps/objectos-server`.

fn main() -> std::process::ExitCode {
    objectos_server::main_entry()
}
