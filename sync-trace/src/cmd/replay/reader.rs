//! A recording read one line at a time: each NDJSON line becomes a
//! [`Record`] as it is needed, with one line buffer reused, so reading
//! costs the same memory at the millionth record as at the first.

use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context as _};

use crate::record::Record;

/// Read buffer: large enough that a read is one system call per few
/// hundred records.
const READ_BUF: usize = 256 * 1024;

/// The records of a recording, in order; `-` is standard input. Blank lines
/// are skipped; a line that is not a record ends the stream with an error
/// naming the file, the line and what was wrong in it.
pub struct RecordReader {
    path: PathBuf,
    input: Box<dyn BufRead>,
    line: String,
    /// Lines read so far (the number of the last one).
    lineno: usize,
    failed: bool,
}

impl RecordReader {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(BufReader::with_capacity(READ_BUF, io::stdin()))
        } else {
            Box::new(BufReader::with_capacity(
                READ_BUF,
                File::open(path).with_context(|| {
                    format!(
                        "cannot open {}: give a file written by `sync-trace run --json`",
                        path.display()
                    )
                })?,
            ))
        };
        Ok(Self {
            path: path.to_path_buf(),
            input,
            line: String::new(),
            lineno: 0,
            failed: false,
        })
    }

    fn next_record(&mut self) -> anyhow::Result<Option<Record>> {
        loop {
            self.line.clear();
            let n = self.input.read_line(&mut self.line).map_err(|e| {
                anyhow!(
                    "{}:{}: cannot read the line ({e})",
                    self.path.display(),
                    self.lineno + 1
                )
            })?;
            if n == 0 {
                return Ok(None);
            }
            self.lineno += 1;
            let line = self.line.trim();
            if line.is_empty() {
                continue;
            }
            return parse_line(&self.path.display().to_string(), self.lineno, line).map(Some);
        }
    }
}

impl Iterator for RecordReader {
    type Item = anyhow::Result<Record>;

    /// The next record; after an error, nothing more.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.next_record().transpose();
        self.failed = matches!(r, Some(Err(_)));
        r
    }
}

/// One NDJSON line of a recording named `name` as a record; an error is
/// one line naming the recording, the line number and what serde found
/// wrong (its message may hold a newline: it is folded).
pub fn parse_line(name: &str, lineno: usize, line: &str) -> anyhow::Result<Record> {
    serde_json::from_str(line).map_err(|e| {
        anyhow!(
            "{name}:{lineno}: not a sync-trace event ({}); replay reads the NDJSON of `sync-trace run --json`",
            e.to_string().replace(['\n', '\r'], " ")
        )
    })
}

/// Reads every record of a recording named `name` (in errors) from `reader`
/// (for callers holding the text in memory; `replay` streams with
/// [`RecordReader`]).
pub fn parse_records(reader: impl BufRead, name: &str) -> anyhow::Result<Vec<Record>> {
    let mut recs = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| anyhow!("{name}:{}: cannot read the line ({e})", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        recs.push(parse_line(name, i + 1, line.trim())?);
    }
    Ok(recs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_of(name: &str, text: &str) -> (PathBuf, RecordReader) {
        let path = std::env::temp_dir().join(format!("st-reader-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let r = RecordReader::open(&path).unwrap();
        (path, r)
    }

    #[test]
    fn a_bad_field_is_one_line_naming_the_line_and_the_field() {
        let lost = "{\"event\":\"lost\",\"what\":\"events\",\"count\":1,\"total\":1}";
        let text = format!(
            "{lost}\n\n{lost}\n{{\"event\":\"lost\",\"what\":\"events\",\"count\":1}}\n{lost}\n"
        );
        let (path, mut r) = reader_of("field", &text);
        assert!(r.next().unwrap().is_ok());
        assert!(r.next().unwrap().is_ok());
        let e = r.next().unwrap().unwrap_err().to_string();
        std::fs::remove_file(&path).ok();
        assert!(e.contains(":4: not a sync-trace event"), "{e}");
        assert!(e.contains("missing field `total`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        assert!(r.next().is_none(), "nothing after an error");
    }

    #[test]
    fn a_missing_file_names_itself() {
        let e = RecordReader::open(Path::new("/nonexistent/rec.ndjson"))
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("cannot open /nonexistent/rec.ndjson"));
    }
}
