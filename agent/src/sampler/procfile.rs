//! A /proc file kept open and re-read from offset 0 each tick into a reused buffer.
//!
//! Opening a /proc file costs a path walk and an allocation in the kernel; pread at offset 0 on an open
//! seq_file restarts it from the first record, so the agent opens each file once and re-reads it.
//!
//! Most files the agent reads are produced whole by one call in the kernel: `single_open` seq files
//! (/proc/stat, meminfo, loadavg, pressure/*, net/snmp, net/netstat, net/sockstat) and sysctls. A read of
//! such a file that returns less than the buffer holds has returned all of it, so `whole_per_read` files
//! skip the read that would only see the end of the file: a syscall less per file per tick. Files listed a
//! record at a time (net/dev, net/tcp), which the kernel hands out a page or so per read, are read to the end.

use super::SampleError;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Smallest buffer a file starts with; /proc/stat on a small host fits, bigger files grow it once.
const INITIAL_BUFFER_BYTES: usize = 8 * 1024;

/// Bytes read per call when only a prefix of the file is wanted.
const PREFIX_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct ProcFile {
    path: PathBuf,
    file: Option<File>,
    /// Zero-initialised storage; only `filled` bytes of it belong to the last read.
    buffer: Vec<u8>,
    filled: usize,
    /// A read shorter than the buffer is the whole file (see the module's notes).
    whole_per_read: bool,
    /// Read calls made, for the tests.
    #[cfg(test)]
    reads: usize,
}

impl ProcFile {
    /// A file read to its end every time.
    pub(crate) fn new(path: PathBuf) -> ProcFile {
        ProcFile {
            path,
            file: None,
            buffer: Vec::new(),
            filled: 0,
            whole_per_read: false,
            #[cfg(test)]
            reads: 0,
        }
    }

    /// A file the kernel produces whole in one read call (a `single_open` seq file or a sysctl).
    pub(crate) fn whole_per_read(path: PathBuf) -> ProcFile {
        ProcFile {
            whole_per_read: true,
            ..ProcFile::new(path)
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file as text.
    pub(crate) fn read(&mut self) -> io::Result<&str> {
        self.read_until(|_| false)
    }

    /// The file from its start up to at least the point where `enough` (called on the whole lines read so
    /// far) says it has seen what it needs; the text returned ends at a line boundary.
    ///
    /// This lets /proc/net/tcp be read only as far as its listening sockets, which the kernel lists first.
    pub(crate) fn read_until(&mut self, enough: impl Fn(&str) -> bool) -> io::Result<&str> {
        self.fill_or_close(enough)?;
        self.contents()
    }

    /// The whole file, with errors that name it.
    pub(crate) fn text(&mut self) -> Result<&str, SampleError> {
        self.fill_or_close(|_| false)
            .map_err(|error| SampleError::io(&self.path, &error))?;
        self.contents()
            .map_err(|error| SampleError::io(&self.path, &error))
    }

    /// The whole file, or `None` when this kernel does not have it (or hides it from us).
    pub(crate) fn optional_text(&mut self) -> Result<Option<&str>, SampleError> {
        match self.fill_or_close(|_| false) {
            Ok(()) => {}
            Err(error) if is_absent(&error) => return Ok(None),
            Err(error) => return Err(SampleError::io(&self.path, &error)),
        }
        self.contents()
            .map(Some)
            .map_err(|error| SampleError::io(&self.path, &error))
    }

    fn contents(&self) -> io::Result<&str> {
        std::str::from_utf8(&self.buffer[..self.filled])
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "contents are not utf-8 text"))
    }

    fn fill_or_close(&mut self, enough: impl Fn(&str) -> bool) -> io::Result<()> {
        let result = self.fill(enough);
        if result.is_err() {
            // A file that failed once is reopened on the next tick, in case it was replaced or removed.
            self.file = None;
            self.filled = 0;
        }
        result
    }

    fn fill(&mut self, enough: impl Fn(&str) -> bool) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(File::open(&self.path)?);
        }
        let Some(file) = self.file.as_ref() else {
            return Ok(());
        };
        if self.buffer.is_empty() {
            self.buffer.resize(INITIAL_BUFFER_BYTES, 0);
        }
        self.filled = 0;
        let mut since_check = 0usize;
        loop {
            if self.filled == self.buffer.len() {
                let grown = self.buffer.len() * 2;
                self.buffer.resize(grown, 0);
            }
            #[cfg(test)]
            {
                self.reads += 1;
            }
            let read = match file.read_at(&mut self.buffer[self.filled..], self.filled as u64) {
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if read == 0 {
                return Ok(());
            }
            self.filled += read;
            if self.whole_per_read && self.filled < self.buffer.len() {
                return Ok(());
            }
            since_check += read;
            if since_check >= PREFIX_CHUNK_BYTES {
                since_check = 0;
                let whole_lines = match self.buffer[..self.filled].iter().rposition(|&b| b == b'\n') {
                    Some(last_newline) => last_newline + 1,
                    None => continue,
                };
                if let Ok(text) = std::str::from_utf8(&self.buffer[..whole_lines]) {
                    if enough(text) {
                        self.filled = whole_lines;
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// True when an IO error means "this kernel has no such file" rather than a fault worth reporting.
pub(crate) fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    ) || error.raw_os_error() == Some(libc::EOPNOTSUPP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rereads_see_new_contents_and_large_files_grow_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        std::fs::write(&path, "first\n").unwrap();
        let mut file = ProcFile::new(path.clone());
        assert_eq!(file.read().unwrap(), "first\n");
        let big = "x".repeat(100_000) + "\n";
        std::fs::File::create(&path)
            .unwrap()
            .write_all(big.as_bytes())
            .unwrap();
        assert_eq!(file.read().unwrap().len(), big.len());
    }

    #[test]
    fn read_until_stops_at_a_line_boundary_once_enough_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tcp");
        let line = "L".repeat(99) + "\n";
        std::fs::write(&path, line.repeat(5_000)).unwrap();
        let mut file = ProcFile::new(path);
        let text = file.read_until(|text| text.lines().count() > 10).unwrap();
        assert!(text.ends_with('\n'));
        assert!(
            text.len() < 500_000,
            "read {} bytes, expected to stop early",
            text.len()
        );
        assert_eq!(file.read().unwrap().len(), 500_000);
    }

    #[test]
    fn a_file_produced_whole_takes_one_read_and_others_read_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meminfo");
        std::fs::write(&path, "MemTotal: 1 kB\n").unwrap();
        let mut whole = ProcFile::whole_per_read(path.clone());
        let mut records = ProcFile::new(path.clone());
        for tick in 1..=3 {
            assert_eq!(whole.read().unwrap(), "MemTotal: 1 kB\n");
            assert_eq!(records.read().unwrap(), "MemTotal: 1 kB\n");
            assert_eq!((whole.reads, records.reads), (tick, 2 * tick));
        }
        // One bigger than the buffer is still read whole, over several calls.
        let big = "y".repeat(3 * INITIAL_BUFFER_BYTES) + "\n";
        std::fs::write(&path, &big).unwrap();
        assert_eq!(whole.read().unwrap(), big);
        // The real thing: the kernel's /proc/meminfo in one read.
        let mut live = ProcFile::whole_per_read(PathBuf::from("/proc/meminfo"));
        let text = live.read().unwrap().to_string();
        assert_eq!(live.reads, 1);
        assert!(text.starts_with("MemTotal:") && text.ends_with('\n'), "{text}");
    }

    #[test]
    fn a_missing_file_is_absent() {
        let mut file = ProcFile::new(PathBuf::from("/nonexistent/headroom/stat"));
        let error = file.read().unwrap_err();
        assert!(is_absent(&error));
    }
}
