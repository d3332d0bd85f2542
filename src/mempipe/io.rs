//! `embedded-io` and `embedded-io-async` for the pipe's ends (`std::io` is
//! in `std_io`, with the same rules).
//!
//! Each impl forwards to the inherent method of the same meaning (writes to
//! the waiting ones: a full streaming pipe makes a write wait, as a pipe
//! does, rather than fail), so the
//! semantics (EOF only after draining, per-reader errors, broken pipe) are
//! identical through every interface. Errors map as described in `error`:
//! closed and broken pipe are `BrokenPipe`, the byte limit `OutOfMemory`,
//! timeouts `TimedOut`, the rest `Other`. `flush` is a no-op: a written byte
//! is visible to readers as soon as `write` returns.

use super::{PipeError, PipeStorage, Reader, Writer};

impl<S: PipeStorage> embedded_io::ErrorType for Writer<S> {
    type Error = PipeError;
}

impl embedded_io::ErrorType for Reader {
    type Error = PipeError;
}

impl<S: PipeStorage> embedded_io::Write for Writer<S> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        Writer::write_wait(self, buf)
    }

    fn flush(&mut self) -> Result<(), PipeError> {
        Ok(())
    }
}

impl embedded_io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        Reader::read(self, buf)
    }
}

impl<S: PipeStorage> embedded_io_async::Write for Writer<S> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        self.write_async(buf).await
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        Ok(())
    }
}

impl embedded_io_async::Read for Reader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        self.read_async(buf).await
    }
}
