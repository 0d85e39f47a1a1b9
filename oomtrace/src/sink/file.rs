//! A file output that survives log rotation.
//!
//! - Opened with `O_APPEND` (created if missing), so `copytruncate` works: after the truncation
//!   the next line goes to the new end of the file, not to the old offset.
//! - Before each write the path is checked (`stat` against the held `fstat`): when it no longer
//!   names the file held (renamed by `mv`/logrotate `create`, or deleted), the path is opened
//!   again, so nothing is written to the rotated file.
//! - [`RotatingFile::reopen`] (on `SIGHUP`) reopens unconditionally.

use std::{
    fs::File,
    io::{self, Write},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// What a sink writes to: stdout, stderr, a file. Only files can be reopened.
pub trait Out: Write + Send {
    /// Opens the output again (on `SIGHUP`); a no-op for streams.
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Out for io::Stdout {}
impl Out for io::Stderr {}
impl Out for Vec<u8> {}
impl Out for &mut Vec<u8> {}

/// An appended file that follows its path.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// (device, inode) of `file`.
    id: (u64, u64),
}

fn open_append(path: &Path) -> io::Result<(File, (u64, u64))> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let m = file.metadata()?;
    Ok((file, (m.dev(), m.ino())))
}

impl RotatingFile {
    /// Opens `path` for appending, creating it if missing.
    pub fn open(path: &Path) -> io::Result<Self> {
        let (file, id) = open_append(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            id,
        })
    }

    /// True when the path still names the file held.
    fn current(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    fn reopen_now(&mut self, why: &str) -> io::Result<()> {
        let (file, id) = open_append(&self.path)?;
        log::info!("output {}: reopened ({why})", self.path.display());
        self.file = file;
        self.id = id;
        Ok(())
    }
}

impl Out for RotatingFile {
    fn reopen(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.reopen_now("SIGHUP")
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.current() {
            // Renamed or deleted (rotated): write to whatever the path names now. When it
            // cannot be opened, the write fails rather than going to the rotated file.
            self.reopen_now("the path no longer names the file held: rotated")?;
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn follows_renames_deletions_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = RotatingFile::open(&p).unwrap();
        f.write_all(b"a\n").unwrap();
        assert_eq!(read(&p), "old\na\n", "appended, not overwritten");

        // mv (logrotate `create`): the next line goes to a new file at the path.
        let rotated = dir.path().join("events.jsonl.1");
        std::fs::rename(&p, &rotated).unwrap();
        f.write_all(b"b\n").unwrap();
        assert_eq!(read(&rotated), "old\na\n", "nothing after the rotation");
        assert_eq!(read(&p), "b\n");

        // Deleted: created again.
        std::fs::remove_file(&p).unwrap();
        f.write_all(b"c\n").unwrap();
        assert_eq!(read(&p), "c\n");

        // copytruncate: O_APPEND writes at the new end, no hole of NULs.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        f.write_all(b"d\n").unwrap();
        assert_eq!(read(&p), "d\n");

        // SIGHUP: reopened even when the path still names the same file.
        let before = f.id;
        f.reopen().unwrap();
        f.write_all(b"e\n").unwrap();
        assert_eq!((f.id, read(&p).as_str()), (before, "d\ne\n"));
    }
}
