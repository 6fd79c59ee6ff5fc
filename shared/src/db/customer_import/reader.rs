//! The customer CSV reader: the parser thread of an import. It reads the file (plain or
//! gzip), checks the header and every row with the rules and messages of the API, and
//! writes the valid rows as COPY data in chunks; the import's transaction (the parent
//! module) stages and applies them.

use std::io::{BufRead, BufReader, Read};

use bytes::Bytes;
use chrono::NaiveDate;
use serde_json::{Map, Number, Value};
use tokio::sync::mpsc;

use super::kind::FileKind;
use super::limits::{ImportLimit, ImportLimits, LimitExceeded, Limited, limit_of};
use super::{
    COPY_CHUNK_BYTES, ImportError, ImportProblem, MAX_REPORTED_IMPORT_ERRORS, READ_BUFFER_BYTES,
};
use crate::db::customers::{CustomerRecord, RECORD_COLUMNS};
use crate::domain::{Channel, ConsentStatus};
use crate::error::ApiError;

/// What the parser thread found.
pub(super) struct Parsed {
    pub(super) rows: u64,
    pub(super) total_problems: u64,
    pub(super) problems: Vec<ImportProblem>,
}

impl Parsed {
    /// Counts `problem`, keeping the first [`MAX_REPORTED_IMPORT_ERRORS`].
    fn report(&mut self, problem: ImportProblem) {
        self.total_problems += 1;
        if self.problems.len() < MAX_REPORTED_IMPORT_ERRORS {
            self.problems.push(problem);
        }
    }
}

/// COPY data in chunks of about [`COPY_CHUNK_BYTES`], sent over the bounded channel.
struct ChunkWriter<'a> {
    writer: csv::Writer<Vec<u8>>,
    chunks: &'a mpsc::Sender<Bytes>,
    prefix: Option<&'a str>,
}

impl<'a> ChunkWriter<'a> {
    fn new(chunks: &'a mpsc::Sender<Bytes>, prefix: Option<&'a str>) -> Self {
        Self {
            writer: Self::buffer(),
            chunks,
            prefix,
        }
    }

    fn buffer() -> csv::Writer<Vec<u8>> {
        csv::Writer::from_writer(Vec::with_capacity(COPY_CHUNK_BYTES + 64 * 1024))
    }

    /// Writes one row's cells; sends the chunk when it is full. `false` when the COPY side
    /// stopped (out of time, or the database failed: it reports why).
    fn write(&mut self, cells: Vec<String>) -> Result<bool, ImportError> {
        if let Some(prefix) = self.prefix {
            self.writer
                .write_field(prefix)
                .map_err(ApiError::internal)?;
        }
        self.writer
            .write_record(cells)
            .map_err(ApiError::internal)?;
        if self.writer.get_ref().len() < COPY_CHUNK_BYTES {
            return Ok(true);
        }
        let chunk = std::mem::replace(&mut self.writer, Self::buffer())
            .into_inner()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(self.chunks.blocking_send(Bytes::from(chunk)).is_ok())
    }

    /// Sends what is left.
    fn finish(self) -> Result<(), ImportError> {
        let rest = self
            .writer
            .into_inner()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if !rest.is_empty() {
            // A closed channel means the COPY side stopped; it reports why.
            let _ = self.chunks.blocking_send(Bytes::from(rest));
        }
        Ok(())
    }
}

/// A CSV reader over the (decompressed) file.
type CsvReader = csv::Reader<Box<dyn Read>>;

/// The CSV reader over `source` (gzip detected by its magic number, concatenated members
/// read in turn; the decompressed bytes held to `limits`) and the header's trimmed names:
/// 422 for a header that repeats a column or does not suit `kind` (a customer file without
/// `full_name` or `email`; a conversion file's, [`super::conversions::check_header`]),
/// [`ImportError::TooLarge`] for one past its limits.
pub(super) fn open_csv<R: Read + 'static>(
    source: R,
    limits: ImportLimits,
    kind: &FileKind,
) -> Result<(CsvReader, Vec<String>), ImportError> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, source);
    let gzip = buffered
        .fill_buf()
        .map_err(ImportError::Read)?
        .starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn Read> = if gzip {
        Box::new(Limited::new(
            flate2::bufread::MultiGzDecoder::new(buffered),
            limits,
        ))
    } else {
        Box::new(Limited::new(buffered, limits))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let headers = reader.headers().map_err(|err| match classify(err, 1, 0) {
        ReadFailure::Row(problem) | ReadFailure::Broken(problem) => {
            ImportError::header(problem.reason)
        }
        ReadFailure::Limit(limit) => ImportError::TooLarge(limit),
        ReadFailure::Source(err) => ImportError::Read(err),
    })?;
    if headers.len() > limits.header_columns {
        return Err(ImportError::TooLarge(LimitExceeded {
            limit: ImportLimit::HeaderColumns,
            max: limits.header_columns as u64,
            line: 1,
        }));
    }
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(ImportError::header(format!(
                "column {name:?} appears twice"
            )));
        }
    }
    match kind {
        FileKind::Customers => {
            for required in ["full_name", "email"] {
                if !names.iter().any(|n| n == required) {
                    return Err(ImportError::header(format!(
                        "the header has no {required} column"
                    )));
                }
            }
        }
        FileKind::Conversions { .. } => {
            super::conversions::check_header(&names).map_err(ImportError::header)?;
        }
    }
    Ok((reader, names))
}

/// One row of a file of `kind` checked, as the customer rows of [`check_row`] or the
/// conversions of [`super::conversions::check_row`] (`now` bounds `occurred_at`).
fn check_row_of(
    kind: &FileKind,
    names: &[String],
    row: &csv::StringRecord,
    line: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> (Option<Vec<String>>, Vec<(String, String)>) {
    match kind {
        FileKind::Customers => check_row(names, row, line),
        FileKind::Conversions { .. } => super::conversions::check_row(names, row, line, now),
    }
}

/// One customer row checked: the cells to stage (a good row's, or a bad row's line and e-mail alone,
/// which still take part in the repeated e-mail check) and its problems by column.
fn check_row(
    names: &[String],
    row: &csv::StringRecord,
    line: u64,
) -> (Option<Vec<String>>, Vec<(String, String)>) {
    let mut problems = Vec::new();
    for (name, field) in names.iter().zip(row.iter()) {
        if field.contains('\0') {
            problems.push((
                name.clone(),
                "must not contain the NUL character (U+0000)".into(),
            ));
        }
    }
    let (record, consents) = parse_row(names, row, &mut problems);
    for (column, reason) in record.problems() {
        problems.push((column.to_owned(), reason));
    }
    if record.email.is_none() {
        problems.push((
            "email".into(),
            "is required: imports match customers by e-mail".into(),
        ));
    }
    let staged = if problems.is_empty() {
        Some(copy_cells(line, &record, &consents))
    } else {
        // The file is refused, so a bad row never reaches the upsert.
        record
            .email
            .as_ref()
            .filter(|email| !email.contains('\0'))
            .map(|email| email_only_cells(line, email))
    };
    (staged, problems)
}

/// Where a parser's rows go and how its lines are numbered: a whole file's, or one part's of
/// a split file.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Numbering<'a> {
    /// Added to the line numbers the reader counts (a part read after the header: its first
    /// line less the header's line count, less one).
    pub(super) line_offset: u64,
    /// A first COPY cell of every row (the staged part's import id).
    pub(super) prefix: Option<&'a str>,
}

/// The parser thread: reads `source`, checks every row as a row of `kind` and sends the
/// staged ones as COPY data chunks (the prefix cell if any, the line number, then a customer
/// file's [`RECORD_COLUMNS`] and [`CONSENT_COLUMNS`], or a conversion file's
/// [`super::conversions::STAGED_COLUMNS`]).
pub(super) fn parse<R: Read + 'static>(
    source: R,
    limits: ImportLimits,
    kind: &FileKind,
    numbering: Numbering<'_>,
    chunks: &mpsc::Sender<Bytes>,
) -> Result<Parsed, ImportError> {
    let (mut reader, names) = open_csv(source, limits, kind)?;
    let now = chrono::Utc::now();
    let offset = numbering.line_offset;
    let mut parsed = Parsed {
        rows: 0,
        total_problems: 0,
        problems: Vec::new(),
    };
    let mut writer = ChunkWriter::new(chunks, numbering.prefix);
    let mut row = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => match classify(err, line, offset) {
                ReadFailure::Row(problem) => {
                    parsed.rows += 1;
                    parsed.report(problem);
                    continue;
                }
                ReadFailure::Broken(problem) => {
                    parsed.report(problem);
                    break;
                }
                ReadFailure::Limit(limit) => return Err(ImportError::TooLarge(limit)),
                ReadFailure::Source(err) => return Err(ImportError::Read(err)),
            },
        }
        parsed.rows += 1;
        let line = row.position().map_or(line, csv::Position::line) + offset;
        let (staged, problems) = check_row_of(kind, &names, &row, line, now);
        if let Some(cells) = staged
            && !writer.write(cells)?
        {
            return Ok(parsed);
        }
        for (column, reason) in problems {
            parsed.report(ImportProblem {
                line,
                column: Some(column),
                reason,
            });
        }
    }
    writer.finish()?;
    Ok(parsed)
}

/// A CSV read error, sorted.
enum ReadFailure {
    /// A bad row (invalid UTF-8, a wrong number of fields): reading goes on.
    Row(ImportProblem),
    /// The file's bytes cannot be read on (a corrupt or truncated gzip stream).
    Broken(ImportProblem),
    /// The file passed one of its limits: reading stops, the file is refused.
    Limit(LimitExceeded),
    /// The source failed, not the file (the connection broke): retrying may succeed.
    Source(std::io::Error),
}

fn classify(err: csv::Error, line: u64, offset: u64) -> ReadFailure {
    let line = err.position().map_or(line, csv::Position::line) + offset;
    if let csv::ErrorKind::Io(io) = err.kind() {
        if let Some(mut limit) = limit_of(io) {
            limit.line += offset;
            return ReadFailure::Limit(limit);
        }
        use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
        return if matches!(io.kind(), InvalidData | InvalidInput | UnexpectedEof) {
            ReadFailure::Broken(ImportProblem {
                line,
                column: None,
                reason: format!("the file cannot be read from here on: {io}"),
            })
        } else {
            match err.into_kind() {
                csv::ErrorKind::Io(io) => ReadFailure::Source(io),
                _ => ReadFailure::Source(std::io::Error::other("unreadable source")),
            }
        };
    }
    ReadFailure::Row(ImportProblem {
        line,
        column: None,
        reason: format!("unreadable row: {err}"),
    })
}

/// The consent columns an import may carry, with their channel: each cell `opted_in` (or
/// `yes`, `true`, `1`), `opted_out` (or `no`, `false`, `0`), `unknown`, or empty (no change).
pub const CONSENT_COLUMNS: [(&str, Channel); 4] = [
    ("consent_email", Channel::Email),
    ("consent_sms", Channel::Sms),
    ("consent_push", Channel::Push),
    ("consent_call", Channel::Call),
];

/// One CSV row as a record and its consent cells; problems of individual cells go to
/// `problems`. A column that is neither a record field nor a consent column goes into
/// `attributes` (after the `attributes` cell's own keys).
fn parse_row(
    names: &[String],
    row: &csv::StringRecord,
    problems: &mut Vec<(String, String)>,
) -> (CustomerRecord, Vec<(Channel, ConsentStatus)>) {
    let mut consents = Vec::new();
    let mut record = blank_record();
    let mut extra = Map::new();
    for (name, cell) in names.iter().zip(row.iter()) {
        let cell = cell.trim();
        let outcome = match CONSENT_COLUMNS.iter().find(|(column, _)| column == name) {
            Some((_, channel)) => {
                consent_cell(cell).map(|status| consents.extend(status.map(|s| (*channel, s))))
            }
            None => set_field(&mut record, name, cell).map(|known| {
                if !known && !cell.is_empty() {
                    extra.insert(name.clone(), Value::String(cell.to_owned()));
                }
            }),
        };
        if let Err(reason) = outcome {
            problems.push((name.clone(), format!("{cell:?} {reason}")));
        }
    }
    record.attributes.extend(extra);
    (record, consents)
}

/// A record with no field set yet (active by default).
fn blank_record() -> CustomerRecord {
    CustomerRecord {
        full_name: String::new(),
        email: None,
        phone: None,
        dob: None,
        gender: None,
        kyc_status: None,
        segment: None,
        occupation: None,
        annual_income: None,
        credit_score: None,
        state: None,
        city: None,
        pin_code: None,
        marital_status: None,
        account_age_months: None,
        preferred_language: None,
        is_active: true,
        attributes: Map::new(),
    }
}

/// Sets `record`'s field `name` from the trimmed `cell` (empty: none): `Ok(false)` when
/// `name` is no field of the record, `Err(reason)` for a cell the field cannot take.
fn set_field(record: &mut CustomerRecord, name: &str, cell: &str) -> Result<bool, &'static str> {
    let text = (!cell.is_empty()).then(|| cell.to_owned());
    let whole = |text: Option<String>| {
        text.map(|t| t.parse::<i32>())
            .transpose()
            .map_err(|_| "is not a whole number")
    };
    match name {
        "full_name" => record.full_name = cell.to_owned(),
        "email" => record.email = text,
        "phone" => record.phone = text,
        "gender" => record.gender = text,
        "kyc_status" => record.kyc_status = text,
        "segment" => record.segment = text,
        "occupation" => record.occupation = text,
        "state" => record.state = text,
        "city" => record.city = text,
        "pin_code" => record.pin_code = text,
        "marital_status" => record.marital_status = text,
        "preferred_language" => record.preferred_language = text,
        "dob" => {
            record.dob = text
                .map(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d"))
                .transpose()
                .map_err(|_| "is not a date (YYYY-MM-DD)")?;
        }
        "annual_income" => {
            record.annual_income = text
                .map(|t| t.parse::<Number>())
                .transpose()
                .map_err(|_| "is not a number")?;
        }
        "credit_score" => record.credit_score = whole(text)?,
        "account_age_months" => record.account_age_months = whole(text)?,
        "is_active" => {
            record.is_active = match cell.to_ascii_lowercase().as_str() {
                "" | "true" | "t" | "1" | "yes" => true,
                "false" | "f" | "0" | "no" => false,
                _ => return Err("is not true or false"),
            };
        }
        "attributes" => match text.map(|t| serde_json::from_str::<Value>(&t)) {
            None => {}
            // `\u0000` parses, but PostgreSQL's jsonb cannot store it: the row is refused,
            // naming its line, rather than the whole import failing in the database.
            Some(Ok(Value::Object(map)))
                if map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)) =>
            {
                return Err("holds U+0000 (\\u0000), which PostgreSQL cannot store");
            }
            Some(Ok(Value::Object(map))) => record.attributes = map,
            Some(_) => return Err("is not a JSON object"),
        },
        _ => return Ok(false),
    }
    Ok(true)
}

/// Whether `value` holds U+0000 in any string or member name.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A consent cell: `opted_in` (or `yes`, `true`, `1`), `opted_out` (or `no`, `false`, `0`),
/// `unknown`, or empty (no change, `None`).
fn consent_cell(cell: &str) -> Result<Option<ConsentStatus>, &'static str> {
    match cell.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "opted_in" | "yes" | "true" | "1" => Ok(Some(ConsentStatus::OptedIn)),
        "opted_out" | "no" | "false" | "0" => Ok(Some(ConsentStatus::OptedOut)),
        "unknown" => Ok(Some(ConsentStatus::Unknown)),
        _ => Err("is not opted_in, opted_out or unknown"),
    }
}

/// COPY cells for a bad row: its line and e-mail, every other cell NULL.
fn email_only_cells(line: u64, email: &str) -> Vec<String> {
    let mut cells = vec![String::new(); 1 + RECORD_COLUMNS.len() + CONSENT_COLUMNS.len()];
    cells[0] = line.to_string();
    if let Some(at) = RECORD_COLUMNS.iter().position(|c| *c == "email") {
        cells[1 + at] = email.to_owned();
    }
    cells
}

/// A record as CSV cells for COPY (empty = NULL), line number first, its consent cells
/// last (in [`CONSENT_COLUMNS`] order; a channel the row leaves alone is NULL).
fn copy_cells(line: u64, r: &CustomerRecord, consents: &[(Channel, ConsentStatus)]) -> Vec<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let int = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_default();
    vec![
        line.to_string(),
        r.full_name.clone(),
        text(&r.email),
        text(&r.phone),
        r.dob.map(|d| d.to_string()).unwrap_or_default(),
        text(&r.gender),
        text(&r.kyc_status),
        text(&r.segment),
        text(&r.occupation),
        r.annual_income
            .as_ref()
            .map(Number::to_string)
            .unwrap_or_default(),
        int(r.credit_score),
        text(&r.state),
        text(&r.city),
        text(&r.pin_code),
        text(&r.marital_status),
        int(r.account_age_months),
        text(&r.preferred_language),
        r.is_active.to_string(),
        Value::Object(r.attributes.clone()).to_string(),
    ]
    .into_iter()
    .chain(CONSENT_COLUMNS.iter().map(|(_, channel)| {
        consents
            .iter()
            .rev()
            .find(|(c, _)| c == channel)
            .map(|(_, status)| status.as_str().to_owned())
            .unwrap_or_default()
    }))
    .collect()
}
