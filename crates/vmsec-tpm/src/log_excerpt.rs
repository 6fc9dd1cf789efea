//! The part of swtpm's log written by one attempt, for error messages.
//!
//! swtpm and swtpm_setup append to the VM's log file across runs; an error
//! should quote only what this run wrote, and only a bounded amount of it.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most log text quoted in one error.
const MAX_EXCERPT: u64 = 16 * 1024;

/// The log file's length before an attempt.
pub(crate) struct LogMark {
    path: PathBuf,
    offset: u64,
}

impl LogMark {
    /// Remembers where the log ends now (0 if it does not exist yet).
    pub(crate) fn new(path: &Path) -> Self {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Self {
            path: path.to_path_buf(),
            offset,
        }
    }

    /// What was appended since [`LogMark::new`], keeping the end if it is
    /// longer than the bound (the last lines name the failure).
    pub(crate) fn appended(&self) -> String {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        // A log shorter than the mark was truncated or replaced: quote it all.
        let from = if len < self.offset { 0 } else { self.offset };
        let from = from.max(len.saturating_sub(MAX_EXCERPT));
        if file.seek(SeekFrom::Start(from)).is_err() {
            return String::new();
        }
        let mut text = Vec::new();
        let _ = file.take(MAX_EXCERPT).read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_after_the_mark_is_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("swtpm.log");
        std::fs::write(&log, "old run\n").expect("write");
        let mark = LogMark::new(&log);
        let mut text = std::fs::read(&log).expect("read");
        text.extend_from_slice(b"new failure\n");
        std::fs::write(&log, text).expect("write");
        assert_eq!(mark.appended(), "new failure\n");
    }

    #[test]
    fn a_missing_log_quotes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mark = LogMark::new(&dir.path().join("none.log"));
        assert_eq!(mark.appended(), "");
    }

    #[test]
    fn a_huge_log_is_cut_to_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("swtpm.log");
        let mark = LogMark::new(&log);
        let mut text = vec![b'x'; 100_000];
        text.extend_from_slice(b"the end\n");
        std::fs::write(&log, &text).expect("write");
        let quoted = mark.appended();
        assert_eq!(quoted.len() as u64, MAX_EXCERPT);
        assert!(quoted.ends_with("the end\n"));
    }
}
