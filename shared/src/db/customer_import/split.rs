//! Planning a file too large for one invocation: one pass over its decompressed bytes,
//! held to the import's limits, that finds the header and cuts the rest into parts of about
//! `part_bytes` at record boundaries ([`super::limits::Boundary`]: just after a line feed
//! outside quotes, so a quoted line break never splits a record, and each part knows the
//! file line it begins on). The pass parses nothing and writes nothing to the database.
//!
//! A part is then read as the header's bytes followed by its own, and checked by the same
//! parser as a whole file, its lines numbered from its first line ([`super::stage_part`]).
//! Files whose lines end with CR alone have no such boundary and are refused when over the
//! part size (the header "line" never ends).

use std::io::{BufRead, BufReader, Cursor, Read};

use bytes::Bytes;

use super::kind::FileKind;
use super::limits::{Boundary, ImportLimit, LimitExceeded, Limited, limit_of};
use super::{ImportError, ImportLimits, ImportProblem, READ_BUFFER_BYTES};

/// One part of a split file: its bytes `start..end` of the decompressed file (after the
/// header) and the file line its first record begins on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartBounds {
    /// First byte, inclusive.
    pub start: u64,
    /// Last byte, exclusive.
    pub end: u64,
    /// File line (1-based; the header is line 1) of the part's first byte.
    pub first_line: u64,
}

/// A file's plan: its header's bytes (line terminator included), its parts in order, its
/// decompressed size and whether it was gzip-compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSplit {
    /// The header line's bytes, as in the file.
    pub header: Vec<u8>,
    /// The parts, covering every byte after the header (at least one, perhaps empty).
    pub parts: Vec<PartBounds>,
    /// Decompressed bytes in all.
    pub bytes: u64,
    /// Whether the file was gzip-compressed.
    pub compressed: bool,
}

/// Bytes of the decompressed file after its header, handed to the split's sink in order:
/// `part` is the part they belong to.
#[derive(Debug, Clone)]
pub struct PartBytes {
    /// The part's index.
    pub part: usize,
    /// The bytes.
    pub data: Bytes,
}

/// Reads `source` (a file of `kind`, plain or gzip, detected by its magic number) once, held
/// to `limits`, and
/// cuts it into parts of at least `part_bytes` (each ends with the record that crosses its
/// size). `sink`, when given, receives every byte after the header of a gzip-compressed
/// file with its part (written out as plain objects; a plain file's parts are read from it
/// by range); it answers `false` to stop.
///
/// # Errors
/// [`ImportError::TooLarge`] for a file past a limit (a header that never ends included);
/// [`ImportError::Invalid`] for a bad header or a corrupt gzip stream;
/// [`ImportError::Read`] when the source failed.
pub fn split<R: Read>(
    source: R,
    kind: &FileKind,
    limits: ImportLimits,
    part_bytes: u64,
    mut sink: Option<&mut dyn FnMut(PartBytes) -> bool>,
) -> Result<FileSplit, ImportError> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, source);
    let compressed = buffered
        .fill_buf()
        .map_err(ImportError::Read)?
        .starts_with(&[0x1f, 0x8b]);
    let mut input: Limited<Box<dyn Read + '_>> = if compressed {
        Limited::cutting(
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            limits,
            part_bytes,
        )
    } else {
        Limited::cutting(Box::new(buffered), limits, part_bytes)
    };
    if !compressed {
        sink = None;
    }
    let mut header = Vec::new();
    let mut buffer = vec![0; READ_BUFFER_BYTES];
    let mut offset = 0u64;
    let mut line = 1u64;
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) => return Err(read_failure(err, line)),
        };
        let cuts = input.cuts().expect("made by Limited::cutting");
        let chunk = &buffer[..read];
        line += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let header_end = cuts.header_end.map_or(u64::MAX, |b| b.offset);
        let chunk_end = offset + read as u64;
        if offset < header_end {
            let upto = usize::try_from(header_end.min(chunk_end) - offset).unwrap_or(read);
            header.extend_from_slice(&chunk[..upto]);
            if header.len() > limits.header_bytes + 2 {
                return Err(ImportError::TooLarge(LimitExceeded {
                    limit: ImportLimit::HeaderBytes,
                    max: limits.header_bytes as u64,
                    line: 1,
                }));
            }
        }
        if let Some(sink) = sink.as_mut() {
            let mut at = offset.max(header_end);
            while at < chunk_end {
                let part = cuts.found.partition_point(|b| b.offset <= at);
                let until = cuts
                    .found
                    .get(part)
                    .map_or(chunk_end, |b| b.offset.min(chunk_end));
                let from = usize::try_from(at - offset).unwrap_or(0);
                let to = usize::try_from(until - offset).unwrap_or(read);
                if !sink(PartBytes {
                    part,
                    data: Bytes::copy_from_slice(&chunk[from..to]),
                }) {
                    return Err(ImportError::Read(std::io::Error::other(
                        "the parts' writer stopped",
                    )));
                }
                at = until;
            }
        }
        offset = chunk_end;
    }
    let cuts = input.cuts().expect("made by Limited::cutting");
    let Some(header_end) = cuts.header_end else {
        // No line feed ended the header: a header-only file without one, or CR line ends.
        return Err(ImportError::header(
            "the header line has no line feed after it: a file split into parts needs line \
             ends of LF or CRLF"
                .into(),
        ));
    };
    check_header(&header, kind, limits)?;
    // A boundary at the very end would begin an empty part.
    let starts: Vec<Boundary> = std::iter::once(header_end)
        .chain(cuts.found.iter().copied().filter(|b| b.offset < offset))
        .collect();
    let parts = starts
        .iter()
        .enumerate()
        .map(|(i, b)| PartBounds {
            start: b.offset,
            end: starts.get(i + 1).map_or(offset, |next| next.offset),
            first_line: b.line,
        })
        .collect();
    Ok(FileSplit {
        header,
        parts,
        bytes: offset,
        compressed,
    })
}

/// The header checked as the whole file's would be (repeated or missing columns, too many).
fn check_header(header: &[u8], kind: &FileKind, limits: ImportLimits) -> Result<(), ImportError> {
    super::reader::open_csv(Cursor::new(header.to_vec()), limits, kind).map(|_| ())
}

/// A read error of the pass, sorted as the parser sorts them.
fn read_failure(err: std::io::Error, line: u64) -> ImportError {
    if let Some(limit) = limit_of(&err) {
        return ImportError::TooLarge(limit);
    }
    use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    if matches!(err.kind(), InvalidData | InvalidInput | UnexpectedEof) {
        ImportError::Invalid {
            total: 1,
            problems: vec![ImportProblem {
                line,
                column: None,
                reason: format!("the file cannot be read from here on: {err}"),
            }],
        }
    } else {
        ImportError::Read(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(file: &[u8], part_bytes: u64) -> FileSplit {
        split(
            Cursor::new(file.to_vec()),
            &FileKind::Customers,
            ImportLimits::with_file_bytes(1 << 30),
            part_bytes,
            None,
        )
        .expect("split")
    }

    #[test]
    fn parts_begin_at_records_and_cover_the_rest_of_the_file() {
        let file = b"full_name,email\r\nA,a@x.io\r\n\"B\r\nb\",b@x.io\r\nC,c@x.io\r\nD,d@x.io\r\n";
        let split = plan(file, 12);
        assert_eq!(split.header, b"full_name,email\r\n");
        let bytes: Vec<&[u8]> = split
            .parts
            .iter()
            .map(|p| &file[p.start as usize..p.end as usize])
            .collect();
        // The quoted line break stays inside its record; lines count every line feed.
        assert_eq!(
            bytes,
            vec![
                &b"A,a@x.io\r\n\"B\r\nb\",b@x.io\r\n"[..],
                &b"C,c@x.io\r\nD,d@x.io\r\n"[..]
            ]
        );
        assert_eq!(
            split.parts.iter().map(|p| p.first_line).collect::<Vec<_>>(),
            vec![2, 5]
        );
        assert_eq!(split.bytes, file.len() as u64);
    }

    #[test]
    fn a_header_only_file_has_one_empty_part_and_a_bad_header_is_refused() {
        let split = plan(b"full_name,email\n", 10);
        assert_eq!(
            split.parts,
            vec![PartBounds {
                start: 16,
                end: 16,
                first_line: 2
            }]
        );
        let refused = split_err(b"full_name,name\nA,B\n");
        assert!(
            matches!(refused, ImportError::Invalid { .. }),
            "{refused:?}"
        );
        let cr_only = split_err(b"full_name,email\rA,a@x.io\r");
        assert!(
            matches!(cr_only, ImportError::Invalid { .. }),
            "{cr_only:?}"
        );
    }

    fn split_err(file: &[u8]) -> ImportError {
        split(
            Cursor::new(file.to_vec()),
            &FileKind::Customers,
            ImportLimits::with_file_bytes(1 << 30),
            4,
            None,
        )
        .expect_err("refused")
    }

    #[test]
    fn the_sink_gets_every_byte_after_the_header_with_its_part() {
        use std::io::Write;
        let mut file = b"full_name,email\n".to_vec();
        for i in 0..2000 {
            writeln!(file, "Name {i},n{i}@x.io").expect("write");
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&file).expect("gzip");
        let compressed = gz.finish().expect("gzip");
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut sink = |bytes: PartBytes| {
            if parts.len() <= bytes.part {
                parts.resize(bytes.part + 1, Vec::new());
            }
            parts[bytes.part].extend_from_slice(&bytes.data);
            true
        };
        let split = split(
            Cursor::new(compressed),
            &FileKind::Customers,
            ImportLimits::with_file_bytes(1 << 30),
            5_000,
            Some(&mut sink),
        )
        .expect("split");
        assert!(split.compressed);
        assert!(split.parts.len() >= 4, "{} parts", split.parts.len());
        assert_eq!(parts.len(), split.parts.len());
        for (bounds, bytes) in split.parts.iter().zip(&parts) {
            assert_eq!(
                &file[bounds.start as usize..bounds.end as usize],
                &bytes[..]
            );
            assert!(bytes.ends_with(b"\n"));
        }
    }
}
