//! The workload's domain types and their validation rules (DESIGN.md
//! "Workload HTTP API"): books, tasks and their rows. The leaf of the crate:
//! it depends on nothing else in it; the events, the journal, the actors and
//! the API depend on it.

use serde::{Deserialize, Serialize};

/// Idempotency keys remembered by default (the book store's and the
/// rebuilt state's bound), oldest forgotten first.
pub const IDEMPOTENCY_KEYS: usize = 100_000;

/// Earliest and latest accepted publication year.
pub const YEAR_RANGE: std::ops::RangeInclusive<i64> = -3000..=2100;
/// Longest accepted title or author, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// A book as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    pub id: u64,
    pub title: String,
    pub author: String,
    pub year: Option<i64>,
}

/// The body of `POST /books`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBook {
    pub title: String,
    pub author: String,
    #[serde(default)]
    pub year: Option<i64>,
}

impl NewBook {
    /// Check the fields; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in [("title", &self.title), ("author", &self.author)] {
            let chars = value.chars().count();
            if value.trim().is_empty() {
                return Err(format!("`{field}` must not be empty"));
            }
            if chars > MAX_TEXT_CHARS {
                return Err(format!(
                    "`{field}` has {chars} characters; at most {MAX_TEXT_CHARS} are allowed"
                ));
            }
        }
        if let Some(year) = self.year
            && !YEAR_RANGE.contains(&year)
        {
            return Err(format!(
                "`year` {year} is out of range; use {} to {}",
                YEAR_RANGE.start(),
                YEAR_RANGE.end()
            ));
        }
        Ok(())
    }
}

/// Most rows in one task.
pub const MAX_ROWS: usize = 5_000;
/// Longest task id, in characters (letters, digits, `-`, `_`).
pub const MAX_ID_CHARS: usize = 128;
/// Longest task kind, in characters.
pub const MAX_KIND_CHARS: usize = 64;
/// Largest debit or credit of one row, in cents. 5,000 rows of it still sum
/// within `i64`, so totals cannot overflow.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000_000;
/// Invalid rows kept in a stored task record (and so in `GET /tasks/{id}`);
/// `POST /tasks` answers with all of them. `invalid_count` always has the total.
pub const STORED_INVALID_ROWS: usize = 100;

/// One row of accounting data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub account: String,
    pub debit_cents: i64,
    pub credit_cents: i64,
}

/// The body of `POST /tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    pub id: String,
    pub kind: String,
    pub rows: Vec<Row>,
}

impl TaskRequest {
    /// Check the request as a whole (rows are judged one by one by [`validate_rows`]).
    pub fn validate(&self) -> Result<(), String> {
        if !valid_task_id(&self.id) {
            return Err(format!("`id` must be 1 to {MAX_ID_CHARS} letters, digits, `-` or `_`"));
        }
        let kind_chars = self.kind.chars().count();
        if kind_chars == 0 || kind_chars > MAX_KIND_CHARS {
            return Err(format!("`kind` must be 1 to {MAX_KIND_CHARS} characters"));
        }
        if self.rows.len() > MAX_ROWS {
            return Err(format!(
                "{} rows; a task holds at most {MAX_ROWS}: split it into several tasks",
                self.rows.len()
            ));
        }
        Ok(())
    }
}

pub fn valid_task_id(id: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidRow {
    /// Zero-based index into `rows`.
    pub row: usize,
    pub reason: String,
}

/// What validating a task's rows found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Validation {
    pub rows: usize,
    pub invalid: Vec<InvalidRow>,
    pub invalid_count: usize,
    pub total_debit_cents: i64,
    pub total_credit_cents: i64,
    /// Debits of the valid rows equal their credits.
    pub balanced: bool,
}

/// `NNNN-NNN`, for example `4000-100`.
fn valid_account(account: &str) -> bool {
    let b = account.as_bytes();
    b.len() == 8 && b[4] == b'-' && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
}

fn row_problem(row: &Row) -> Option<&'static str> {
    if !valid_account(&row.account) {
        return Some("account must be four digits, a dash and three digits, like 4000-100");
    }
    if row.debit_cents < 0 || row.credit_cents < 0 {
        return Some("amounts must not be negative");
    }
    if row.debit_cents > MAX_AMOUNT_CENTS || row.credit_cents > MAX_AMOUNT_CENTS {
        return Some("amount above 10^15 cents");
    }
    match (row.debit_cents != 0, row.credit_cents != 0) {
        (true, true) => Some("a row has either a debit or a credit, not both"),
        (false, false) => Some("a row needs a non-zero debit or credit"),
        _ => None,
    }
}

/// Validate every row and total the valid ones. Work is linear in the rows.
pub fn validate_rows(rows: &[Row]) -> Validation {
    let mut v = Validation {
        rows: rows.len(),
        ..Validation::default()
    };
    for (i, row) in rows.iter().enumerate() {
        match row_problem(row) {
            Some(reason) => v.invalid.push(InvalidRow {
                row: i,
                reason: reason.to_owned(),
            }),
            None => {
                v.total_debit_cents += row.debit_cents;
                v.total_credit_cents += row.credit_cents;
            }
        }
    }
    v.invalid_count = v.invalid.len();
    v.balanced = v.total_debit_cents == v.total_credit_cents;
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    Done,
    Failed,
}

/// A task's record: what `POST /tasks` answers and `GET /tasks/{id}` returns.
///
/// In JSON (and every human-readable format) the validation's fields sit
/// beside the record's own (`flatten`); in a binary format such as the split
/// link's postcard, which cannot flatten, the validation is nested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub id: String,
    pub kind: String,
    pub status: TaskStatus,
    /// Index of the actor that ran the task (per-task routing: the actor's serial number).
    pub actor: u64,
    pub validation: Validation,
}

/// A [`TaskRecord`]'s own fields, borrowed (`&str`) to write and owned to read.
#[derive(Serialize, Deserialize)]
struct RecordFields<T> {
    id: T,
    kind: T,
    status: TaskStatus,
    actor: u64,
}

/// [`TaskRecord`]'s JSON form: its fields and the validation's in one object.
#[derive(Serialize, Deserialize)]
#[serde(rename = "TaskRecord")]
struct FlatTaskRecord<T, V> {
    #[serde(flatten)]
    fields: RecordFields<T>,
    #[serde(flatten)]
    validation: V,
}

/// [`TaskRecord`]'s binary form: the validation nested. A binary format
/// writes a struct as its fields in order, so this is the record's five
/// fields one after the other.
#[derive(Serialize, Deserialize)]
#[serde(rename = "TaskRecord")]
struct NestedTaskRecord<T, V> {
    fields: RecordFields<T>,
    validation: V,
}

impl Serialize for TaskRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = RecordFields {
            id: self.id.as_str(),
            kind: self.kind.as_str(),
            status: self.status,
            actor: self.actor,
        };
        let validation = &self.validation;
        if serializer.is_human_readable() {
            FlatTaskRecord { fields, validation }.serialize(serializer)
        } else {
            NestedTaskRecord { fields, validation }.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for TaskRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (fields, validation) = if deserializer.is_human_readable() {
            let r = FlatTaskRecord::<String, Validation>::deserialize(deserializer)?;
            (r.fields, r.validation)
        } else {
            let r = NestedTaskRecord::<String, Validation>::deserialize(deserializer)?;
            (r.fields, r.validation)
        };
        Ok(TaskRecord {
            id: fields.id,
            kind: fields.kind,
            status: fields.status,
            actor: fields.actor,
            validation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished task of one valid and one invalid row.
    fn record() -> TaskRecord {
        let row = |account: &str, debit_cents| Row {
            account: account.into(),
            debit_cents,
            credit_cents: 0,
        };
        let validation = validate_rows(&[row("4000-100", 100), row("4000-1000", 5)]);
        assert_eq!((validation.rows, validation.invalid_count), (2, 1));
        TaskRecord {
            id: "t-1".into(),
            kind: "validate".into(),
            status: TaskStatus::Done,
            actor: 3,
            validation,
        }
    }

    /// JSON: one flat object, the record's keys then the validation's;
    /// postcard: the five fields one after the other (what a split peer reads).
    #[test]
    fn task_record_wire_forms() {
        let r = record();
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.starts_with(r#"{"id":"t-1","kind":"validate","status":"done","actor":3,"rows":2,"invalid":["#),
            "{json}"
        );
        assert!(
            json.ends_with(r#""total_debit_cents":100,"total_credit_cents":0,"balanced":false}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<TaskRecord>(&json).unwrap(), r);
        let fields = (&r.id, &r.kind, r.status, r.actor, &r.validation);
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&fields).unwrap());
        assert_eq!(postcard::from_bytes::<TaskRecord>(&bytes).unwrap(), r);
    }
}
