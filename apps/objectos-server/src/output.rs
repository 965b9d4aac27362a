//! Command output on stdout that ends quietly when the reader goes away
//! (`objectos audit export | head`).
//!
//! A Rust program ignores SIGPIPE, so writing to a pipe whose reader has exited fails with
//! `BrokenPipe`, and `print!`/`println!` turn that failure into a panic. Two ways out: restore
//! the default SIGPIPE disposition, or handle the error. We handle the error: restoring SIGPIPE
//! takes unsafe code, and in `serve` it would let a write to a socket the peer closed kill the
//! whole server wherever the socket layer does not suppress the signal itself. So every command
//! writes its output through [`write`] (or [`outln!`]), which returns the error, and
//! [`crate::main_entry`] ends the process with exit code 0 and nothing on stderr when the error
//! is a broken pipe ([`is_broken_pipe`]): the reader has all it asked for, as with `yes | head`.

use std::fmt;
use std::io::{self, Write};

/// Writes `args` to stdout through one lock and flushes, so a closed pipe is reported here
/// instead of at a later write or at exit.
pub fn write(args: fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()
}

/// `println!` that returns the write error instead of panicking (see the module docs).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Whether `err` (or anything in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipes_are_found_through_context() {
        let pipe = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing the export");
        assert!(is_broken_pipe(&pipe));
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
        assert!(!is_broken_pipe(&anyhow::anyhow!("broken pipe")));
    }
}
