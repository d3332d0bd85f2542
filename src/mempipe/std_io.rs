//! `std::io` for the pipe's ends (`std` only), with the same rules as the
//! `embedded-io` impls in `io`: writes wait for room, `flush` is a no-op,
//! errors map to the `io::ErrorKind` of the same meaning.

#[cfg(not(notification_queue_loom))]
use super::SharedWriter;
use super::{MergedReader, PipeError, PipeStorage, Reader, Writer};

impl<S: PipeStorage> std::io::Write for Writer<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Writer::write_wait(self, buf).map_err(Into::into)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Reader::read(self, buf).map_err(Into::into)
    }
}

// The shared writer is not part of the loom build.
#[cfg(not(notification_queue_loom))]
impl<S: PipeStorage> std::io::Write for SharedWriter<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SharedWriter::write_wait(self, buf).map_err(Into::into)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The shared writer is not part of the loom build.
#[cfg(not(notification_queue_loom))]
impl<S: PipeStorage> std::io::Write for &SharedWriter<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SharedWriter::write_wait(self, buf).map_err(Into::into)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Read for MergedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        MergedReader::read(self, buf).map_err(Into::into)
    }
}

impl From<PipeError> for std::io::Error {
    fn from(e: PipeError) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e {
            PipeError::Closed | PipeError::BrokenPipe { .. } => K::BrokenPipe,
            PipeError::Full { .. }
            | PipeError::ReaderLimit { .. }
            | PipeError::OutOfMemory { .. } => K::OutOfMemory,
            PipeError::InvalidLimit { .. } | PipeError::InvalidErrno { .. } => K::InvalidInput,
            PipeError::TimedOut => K::TimedOut,
            PipeError::Failed { .. } | PipeError::Reader { .. } | PipeError::Queue(_) => K::Other,
            PipeError::NoWriter => K::NotConnected,
            PipeError::Exists => K::AlreadyExists,
            PipeError::Storage { .. } => K::Other,
        };
        std::io::Error::new(kind, e)
    }
}
