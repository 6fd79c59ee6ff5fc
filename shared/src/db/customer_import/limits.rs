//! The import's resource limits, enforced on the decompressed bytes before the CSV parser
//! buffers them: a [`Read`] adapter that counts the file's bytes and follows the CSV
//! grammar's quoting (RFC 4180, as the `csv` crate reads it by default) just far enough to
//! know where each record and field ends, and fails as soon as one grows past its limit.
//!
//! A gzip file of a few hundred kilobytes can hold a header line of gigabytes or a single
//! cell as large: without this, the parser would grow its record buffer to hold it. With
//! it, the parser never holds more than one record's limit plus one read buffer.

use std::io::Read;

/// The limits of one import, in bytes of the decompressed file (UTF-8 as read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// The whole file, decompressed.
    pub file_bytes: u64,
    /// The header line (line 1).
    pub header_bytes: usize,
    /// Columns in the header.
    pub header_columns: usize,
    /// One record (a data row, line breaks inside quoted cells included).
    pub record_bytes: usize,
    /// One cell, quotes included.
    pub field_bytes: usize,
}

impl ImportLimits {
    /// The header line's limit: 64 KiB.
    pub const HEADER_BYTES: usize = 64 * 1024;
    /// Columns a header may name: 256 (the record's 17 columns, `attributes`, the 4 consent
    /// columns and the rest as attribute keys).
    pub const HEADER_COLUMNS: usize = 256;
    /// One record's limit: 256 KiB.
    pub const RECORD_BYTES: usize = 256 * 1024;
    /// One cell's limit: 64 KiB.
    pub const FIELD_BYTES: usize = 64 * 1024;
    /// The decompressed size `POST /customers/import` reads: 64 MiB (its body is at most
    /// 6 MB; a larger file goes through S3).
    pub const API_FILE_BYTES: u64 = 64 << 20;

    /// The limits with `file_bytes` for the whole file and the constants above for the
    /// rest.
    #[must_use]
    pub const fn with_file_bytes(file_bytes: u64) -> Self {
        Self {
            file_bytes,
            header_bytes: Self::HEADER_BYTES,
            header_columns: Self::HEADER_COLUMNS,
            record_bytes: Self::RECORD_BYTES,
            field_bytes: Self::FIELD_BYTES,
        }
    }

    /// The limits of `POST /customers/import`.
    pub const API: Self = Self::with_file_bytes(Self::API_FILE_BYTES);
}

/// Which limit a file passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportLimit {
    /// [`ImportLimits::file_bytes`].
    FileBytes,
    /// [`ImportLimits::header_bytes`].
    HeaderBytes,
    /// [`ImportLimits::header_columns`].
    HeaderColumns,
    /// [`ImportLimits::record_bytes`].
    RecordBytes,
    /// [`ImportLimits::field_bytes`].
    FieldBytes,
}

impl ImportLimit {
    /// Its name in results and problem details: `file_bytes`, `header_bytes`,
    /// `header_columns`, `record_bytes`, `field_bytes`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileBytes => "file_bytes",
            Self::HeaderBytes => "header_bytes",
            Self::HeaderColumns => "header_columns",
            Self::RecordBytes => "record_bytes",
            Self::FieldBytes => "field_bytes",
        }
    }
}

/// A limit passed at `line` (1-based; the line where the record began).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct LimitExceeded {
    /// Which limit.
    pub limit: ImportLimit,
    /// Its value (bytes, or columns for [`ImportLimit::HeaderColumns`]).
    pub max: u64,
    /// The line where the record that passed it began.
    pub line: u64,
}

impl LimitExceeded {
    /// One sentence for the result or the problem details.
    #[must_use]
    pub fn describe(&self) -> String {
        let max = self.max;
        match self.limit {
            ImportLimit::FileBytes => {
                format!("the file decompresses to more than {max} bytes; split it")
            }
            ImportLimit::HeaderBytes => format!("the header (line 1) is longer than {max} bytes"),
            ImportLimit::HeaderColumns => format!("the header names more than {max} columns"),
            ImportLimit::RecordBytes => format!(
                "the row beginning on line {} is longer than {max} bytes",
                self.line
            ),
            ImportLimit::FieldBytes => format!(
                "a cell of the row beginning on line {} is longer than {max} bytes",
                self.line
            ),
        }
    }
}

/// Where the reader is in the CSV grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field (after a comma, a line break or at the file's start).
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// After a quote inside a quoted field: a second quote is an escaped one, anything
    /// else ends the quoting.
    QuoteInQuoted,
}

/// The counting adapter: passes the bytes through, failing with an [`std::io::Error`]
/// wrapping [`LimitExceeded`] at the first byte past a limit.
pub(super) struct Limited<R> {
    inner: R,
    limits: ImportLimits,
    state: State,
    total: u64,
    record: usize,
    field: usize,
    /// Physical line of the current byte (1-based) and of the current record's start.
    line: u64,
    record_line: u64,
    header: bool,
    cuts: Option<Cuts>,
}

/// A place where a part of the file may begin: just after a line feed that ends a record
/// (outside quotes), so that the bytes from here on parse, after the header, exactly as
/// they do in the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    /// Byte offset in the decompressed file.
    pub offset: u64,
    /// The file line (1-based) that begins there.
    pub line: u64,
}

/// The record boundaries [`Limited::cutting`] collects: where the header ends, and from
/// there the first boundary at or past every `every` bytes.
#[derive(Debug)]
pub(super) struct Cuts {
    every: u64,
    next_at: u64,
    pub(super) header_end: Option<Boundary>,
    pub(super) found: Vec<Boundary>,
}

impl<R: Read> Limited<R> {
    pub(super) fn new(inner: R, limits: ImportLimits) -> Self {
        Self {
            inner,
            limits,
            state: State::FieldStart,
            total: 0,
            record: 0,
            field: 0,
            line: 1,
            record_line: 1,
            header: true,
            cuts: None,
        }
    }

    /// [`Limited::new`] that also collects the header's end and a record boundary at or past
    /// every `every` bytes after it ([`Limited::cuts`]).
    pub(super) fn cutting(inner: R, limits: ImportLimits, every: u64) -> Self {
        Self {
            cuts: Some(Cuts {
                every: every.max(1),
                next_at: 0,
                header_end: None,
                found: Vec::new(),
            }),
            ..Self::new(inner, limits)
        }
    }

    /// The boundaries collected so far (none unless made by [`Limited::cutting`]).
    pub(super) fn cuts(&self) -> Option<&Cuts> {
        self.cuts.as_ref()
    }

    /// Notes a line feed outside quotes that ended at `offset` (the next byte's).
    fn line_feed(&mut self, offset: u64) {
        let (header, line) = (self.header, self.line);
        let Some(cuts) = self.cuts.as_mut() else {
            return;
        };
        let here = Boundary { offset, line };
        if cuts.header_end.is_none() {
            if !header {
                cuts.header_end = Some(here);
                cuts.next_at = offset.saturating_add(cuts.every);
            }
        } else if offset >= cuts.next_at {
            cuts.found.push(here);
            cuts.next_at = offset.saturating_add(cuts.every);
        }
    }

    fn exceeded(&self, limit: ImportLimit, max: u64) -> std::io::Error {
        std::io::Error::other(LimitExceeded {
            limit,
            max,
            line: self.record_line,
        })
    }

    /// Follows one byte; an error when it passes a limit.
    fn step(&mut self, byte: u8) -> Result<(), std::io::Error> {
        let terminator = byte == b'\n' || byte == b'\r';
        let ends_field = byte == b',';
        self.state = match (self.state, byte) {
            (State::FieldStart, b'"') | (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (_, _) if terminator || ends_field => State::FieldStart,
            _ => State::Unquoted,
        };
        if byte == b'\n' {
            self.line += 1;
        }
        if self.state == State::FieldStart {
            self.field = 0;
            if terminator {
                if self.record > 0 {
                    self.header = false;
                }
                self.record = 0;
                self.record_line = self.line;
            }
            return Ok(());
        }
        self.field += 1;
        self.record += 1;
        let (record_limit, record_kind) = if self.header {
            (self.limits.header_bytes, ImportLimit::HeaderBytes)
        } else {
            (self.limits.record_bytes, ImportLimit::RecordBytes)
        };
        if self.record > record_limit {
            return Err(self.exceeded(record_kind, record_limit as u64));
        }
        // A header's cells are bounded by the header's own limit.
        if !self.header && self.field > self.limits.field_bytes {
            return Err(self.exceeded(ImportLimit::FieldBytes, self.limits.field_bytes as u64));
        }
        Ok(())
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        let start = self.total;
        self.total += read as u64;
        if self.total > self.limits.file_bytes {
            return Err(self.exceeded(ImportLimit::FileBytes, self.limits.file_bytes));
        }
        for (at, &byte) in (start..).zip(&buf[..read]) {
            self.step(byte)?;
            if byte == b'\n' && self.state == State::FieldStart && self.cuts.is_some() {
                self.line_feed(at + 1);
            }
        }
        Ok(read)
    }
}

/// The limit an I/O error from [`Limited`] carries, if it is one.
pub(super) fn limit_of(err: &std::io::Error) -> Option<LimitExceeded> {
    err.get_ref()?.downcast_ref::<LimitExceeded>().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ImportLimits {
        ImportLimits {
            file_bytes: 1_000,
            header_bytes: 20,
            header_columns: 4,
            record_bytes: 30,
            field_bytes: 10,
        }
    }

    fn read_all(input: &str, limits: ImportLimits) -> Result<String, LimitExceeded> {
        let mut out = String::new();
        Limited::new(input.as_bytes(), limits)
            .read_to_string(&mut out)
            .map(|_| out)
            .map_err(|e| limit_of(&e).expect("a limit"))
    }

    #[test]
    fn passes_a_file_within_its_limits_unchanged() {
        let file = "a,b\r\n\"x,\"\"y\"\"\",2\n\"mu\nlti\",3\n";
        assert_eq!(read_all(file, limits()).expect("within"), file);
    }

    #[test]
    fn names_the_limit_and_the_line_it_passed() {
        let long_header = format!("{}\n", "h".repeat(21));
        assert_eq!(
            read_all(&long_header, limits()).map_err(|e| (e.limit, e.line)),
            Err((ImportLimit::HeaderBytes, 1))
        );
        let long_cell = format!("a,b\n1,2\n{},1\n", "c".repeat(11));
        assert_eq!(
            read_all(&long_cell, limits()).map_err(|e| (e.limit, e.line)),
            Err((ImportLimit::FieldBytes, 3))
        );
        let long_row = format!("a,b\n{}\n", "ccccccccc,".repeat(4));
        assert_eq!(
            read_all(&long_row, limits()).map_err(|e| (e.limit, e.line)),
            Err((ImportLimit::RecordBytes, 2))
        );
        let big_file = "a,b\n1,2\n".repeat(200);
        assert_eq!(
            read_all(&big_file, limits()).map_err(|e| e.limit),
            Err(ImportLimit::FileBytes)
        );
    }

    #[test]
    fn line_breaks_inside_quotes_belong_to_the_record() {
        // A quoted cell of many short lines is still one cell.
        let cell = format!("a,b\n\"{}\",1\n", "x\n".repeat(6));
        assert_eq!(
            read_all(&cell, limits()).map_err(|e| (e.limit, e.line)),
            Err((ImportLimit::FieldBytes, 2))
        );
        // A quote inside an unquoted cell is a character, not the start of quoting.
        let stray = "a,b\n5'10\",x\n1,2\n3,4\n";
        assert_eq!(read_all(stray, limits()).expect("within"), stray);
    }
}
