//! The `objectos` binary: everything lives in `objectos_server::main_entry`.

// The request path allocates many short-lived buffers across two runtime threads; glibc's
// malloc showed up at 10-16 % of a GET in profiles (docs/benchmarks.md). Built without
// transparent huge pages (`no_thp`): mimalloc's madvise(MADV_HUGEPAGE) on its arenas took idle
// RSS from about 20 to 33 MiB.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    objectos_server::main_entry()
}
